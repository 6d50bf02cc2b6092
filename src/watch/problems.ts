/**
 * What can be wrong on Meta's side of a line, as snake_case names (like the failure reasons of
 * src/errors.ts, but a line's condition rather than an event's outcome). Pure functions only: the
 * watcher and the worker feed them Graph answers and webhook values, and store what they return.
 */
export const LINE_PROBLEMS = [
  'app_not_subscribed',
  'callback_elsewhere',
  'token_rejected',
  'number_not_connected',
  'quality_red',
  'graph_unreachable',
  'inbound_silent',
] as const;
export type LineProblem = (typeof LINE_PROBLEMS)[number];

export function isLineProblem(value: string): value is LineProblem {
  return (LINE_PROBLEMS as readonly string[]).includes(value);
}

/** A verdict on some problems: `found` ones are present (with a detail), every other `checked` one is absent. */
export interface ProblemVerdict {
  checked: LineProblem[];
  found: Partial<Record<LineProblem, string>>;
}

/** What each problem means for the operator, and what to do: the console and the README say the same. */
export const PROBLEM_ADVICE: Record<LineProblem, string> = {
  app_not_subscribed: 'Meta sends this WABA\'s webhooks to no app of ours: POST /{waba_id}/subscribed_apps with the WABA\'s token.',
  callback_elsewhere: 'Meta delivers this number\'s webhooks to another URL (a phone number or WABA override): remove the override or point it at this gateway.',
  token_rejected: 'Graph refuses the line\'s access token (expired, revoked, or missing a permission): issue a new system-user token and update the line\'s secret.',
  number_not_connected: 'The phone number is not connected (disconnected, restricted, banned or deleted): check it in WhatsApp Manager.',
  quality_red: 'The number\'s quality rating is RED (or Meta flagged it): sends may be limited; review recent templates and opt-outs.',
  graph_unreachable: 'The watcher could not reach Graph for this line (network or Graph 5xx): its other checks are stale until it can.',
  inbound_silent: 'A line that usually receives messages has received none for far longer than its usual gap: check the problems above, then Meta\'s status page.',
};

/** The Graph error codes that mean "this token cannot do this" (ARCHITECTURE § Meta outbound). */
const TOKEN_CODES = new Set([190, 10, 200]);

export function isTokenErrorCode(code: number | undefined): boolean {
  return code !== undefined && (TOKEN_CODES.has(code) || (code >= 200 && code <= 299));
}

/** `GET /{phone_number_id}?fields=webhook_configuration`: the override on the number, else the WABA's, else the app's. */
export function effectiveCallback(config: { phone_number?: unknown; whatsapp_business_account?: unknown; application?: unknown } | undefined): string | undefined {
  for (const candidate of [config?.phone_number, config?.whatsapp_business_account, config?.application]) {
    if (typeof candidate === 'string' && candidate.length > 0) return candidate;
  }
  return undefined;
}

function normalisedUrl(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host.toLowerCase()}${parsed.pathname.replace(/\/+$/, '')}`;
  } catch {
    return undefined;
  }
}

/** Whether Meta's callback is this gateway's: PUBLIC_BASE_URL + /webhooks/whatsapp, or + /webhooks/whatsapp/<lineId>. */
export function callbackIsOurs(callback: string, publicBaseUrl: string, lineId: string): boolean {
  const given = normalisedUrl(callback);
  const base = publicBaseUrl.replace(/\/+$/, '');
  return given !== undefined && [`${base}/webhooks/whatsapp`, `${base}/webhooks/whatsapp/${lineId}`].map(normalisedUrl).includes(given);
}

/** Only the host of a URL goes into a problem's detail (the path may carry a token). */
export function hostOf(url: string | undefined): string {
  if (!url) return '(none)';
  try {
    return new URL(url).host || '(invalid)';
  } catch {
    return '(invalid)';
  }
}

/** One Graph call's answer as the watcher sees it. */
export type GraphAnswer =
  | { kind: 'ok'; body: unknown }
  | { kind: 'error'; httpStatus: number; code?: number; title: string }
  | { kind: 'unreachable'; detail: string };

/** States of `status` that still deliver messages; FLAGGED is quality's business (quality_red). */
const CONNECTED_STATES = new Set(['CONNECTED', 'FLAGGED', 'RATE_LIMITED']);

export interface WatchFacts {
  lineId: string;
  /** The app that must be subscribed (WHATSAPP_APP_ID); undefined: that check is skipped. */
  appId?: string;
  /** PUBLIC_BASE_URL; undefined: the callback check is skipped. */
  publicBaseUrl?: string;
  /** `GET /{waba_id}/subscribed_apps`; undefined when not called. */
  subscribedApps?: GraphAnswer;
  /** `GET /{phone_number_id}?fields=webhook_configuration,status,quality_rating,…`; undefined when not called. */
  phoneNumber?: GraphAnswer;
}

function subscribedAppIds(body: unknown): string[] {
  const data = (body as { data?: unknown } | undefined)?.data;
  if (!Array.isArray(data)) return [];
  return data
    .map((entry: unknown) => {
      const app = (entry as { whatsapp_business_api_data?: { id?: unknown } } | undefined)?.whatsapp_business_api_data;
      return typeof app?.id === 'string' ? app.id : typeof app?.id === 'number' ? String(app.id) : undefined;
    })
    .filter((id): id is string => id !== undefined);
}

/**
 * A round's verdict from the Graph answers. A token error or an unreachable Graph decides only
 * those two problems: what Graph did not answer is left as it was (`checked` leaves it out).
 */
export function deriveProblems(facts: WatchFacts): ProblemVerdict {
  const answers = [facts.subscribedApps, facts.phoneNumber].filter((a): a is GraphAnswer => a !== undefined);
  const tokenError = answers.find((a) => a.kind === 'error' && isTokenErrorCode(a.code));
  const unreachable = answers.find((a) => a.kind === 'unreachable' || (a.kind === 'error' && (a.httpStatus >= 500 || a.httpStatus === 429) && !isTokenErrorCode(a.code)));
  const verdict: ProblemVerdict = { checked: ['token_rejected', 'graph_unreachable'], found: {} };
  if (tokenError && tokenError.kind === 'error') verdict.found.token_rejected = `Graph error ${tokenError.code}: ${tokenError.title}`.slice(0, 200);
  if (unreachable) verdict.found.graph_unreachable = unreachable.kind === 'error' ? `HTTP ${unreachable.httpStatus}` : unreachable.kind === 'unreachable' ? unreachable.detail : '';

  if (facts.appId !== undefined && facts.subscribedApps?.kind === 'ok') {
    verdict.checked.push('app_not_subscribed');
    if (!subscribedAppIds(facts.subscribedApps.body).includes(facts.appId)) verdict.found.app_not_subscribed = `app ${facts.appId} is not in subscribed_apps`;
  }
  if (facts.phoneNumber?.kind === 'ok') {
    const body = (facts.phoneNumber.body ?? {}) as { webhook_configuration?: Record<string, unknown>; status?: unknown; quality_rating?: unknown };
    if (facts.publicBaseUrl !== undefined) {
      verdict.checked.push('callback_elsewhere');
      const callback = effectiveCallback(body.webhook_configuration);
      if (!callback || !callbackIsOurs(callback, facts.publicBaseUrl, facts.lineId)) verdict.found.callback_elsewhere = hostOf(callback);
    }
    if (typeof body.status === 'string') {
      verdict.checked.push('number_not_connected');
      if (!CONNECTED_STATES.has(body.status.toUpperCase())) verdict.found.number_not_connected = `status ${body.status}`;
    }
    if (typeof body.quality_rating === 'string') {
      verdict.checked.push('quality_red');
      if (body.quality_rating.toUpperCase() === 'RED') verdict.found.quality_red = 'quality_rating RED';
    }
  }
  return verdict;
}

/**
 * What an `account_update` or `phone_number_quality_update` webhook says at once, before the next
 * round (Meta's webhook references for both fields). Undefined: the event changes no problem.
 */
export function problemsFromAccountEvent(field: string, value: unknown): ProblemVerdict | undefined {
  const v = (value ?? {}) as { event?: unknown; ban_info?: { waba_ban_state?: unknown }; restriction_info?: unknown };
  const event = typeof v.event === 'string' ? v.event.toUpperCase() : '';
  if (field === 'phone_number_quality_update') {
    if (event === 'FLAGGED') return { checked: ['quality_red'], found: { quality_red: 'phone_number_quality_update FLAGGED' } };
    if (event === 'UNFLAGGED') return { checked: ['quality_red'], found: {} };
    return undefined;
  }
  if (field !== 'account_update') return undefined;
  switch (event) {
    case 'ACCOUNT_DELETED':
      return { checked: ['number_not_connected'], found: { number_not_connected: 'account_update ACCOUNT_DELETED' } };
    case 'ACCOUNT_RESTRICTION':
      return { checked: ['number_not_connected'], found: { number_not_connected: 'account_update ACCOUNT_RESTRICTION' } };
    case 'DISABLED_UPDATE': {
      const state = typeof v.ban_info?.waba_ban_state === 'string' ? v.ban_info.waba_ban_state.toUpperCase() : '';
      if (state === 'REINSTATE') return { checked: ['number_not_connected'], found: {} };
      return { checked: ['number_not_connected'], found: { number_not_connected: `account_update DISABLED_UPDATE ${state}`.trim() } };
    }
    case 'PARTNER_APP_UNINSTALLED':
    case 'PARTNER_REMOVED':
      return { checked: ['app_not_subscribed'], found: { app_not_subscribed: `account_update ${event}` } };
    case 'PARTNER_APP_INSTALLED':
    case 'PARTNER_ADDED':
      return { checked: ['app_not_subscribed'], found: {} };
    default:
      return undefined;
  }
}

/** One stored problem of a line. */
export interface ActiveProblem {
  problem: LineProblem;
  /** ISO time it was first seen (kept while it stays). */
  since: string;
  detail?: string;
}

/** The change a verdict makes to what was stored: for the logs (warn on raise or change, info on clear). */
export function problemChanges(before: ActiveProblem[], verdict: ProblemVerdict): { raised: ActiveProblem[]; changed: ActiveProblem[]; cleared: ActiveProblem[] } {
  const previous = new Map(before.map((p) => [p.problem, p]));
  const raised: ActiveProblem[] = [];
  const changed: ActiveProblem[] = [];
  const cleared: ActiveProblem[] = [];
  for (const problem of verdict.checked) {
    const old = previous.get(problem);
    const detail = verdict.found[problem];
    if (detail !== undefined && !old) raised.push({ problem, since: '', detail });
    else if (detail !== undefined && old && old.detail !== detail) changed.push({ ...old, detail });
    else if (detail === undefined && old) cleared.push(old);
  }
  return { raised, changed, cleared };
}
