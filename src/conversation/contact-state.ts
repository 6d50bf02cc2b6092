/**
 * A contact's conversation state and the rules that move it. Pure: no I/O, no clock. Every rule is
 * monotone in Meta's timestamps, so applying the same fact twice (a redelivered event) or an older
 * fact late (Meta retries for 7 days) changes nothing: that is what makes the store's writes
 * idempotent per event.
 */

export const WINDOW_SECONDS = 24 * 60 * 60;

/** Who paused the AI: the contact API, the owner in the WhatsApp Business app, or Meta's thread control. */
export type PauseSource = 'api' | 'business_app' | 'meta_handover';

export interface ContactIdentity {
  waId?: string;
  userId?: string;
  /** A WhatsApp group (Groups API): the group is the conversation. */
  groupId?: string;
}

export interface ContactState extends ContactIdentity {
  lineId: string;
  contactId: string;
  /** Epoch ms: Meta timestamp of the person's latest message (or call) + 24 h. */
  windowOpenUntil?: number;
  /** Epoch ms of the person's latest message (Meta timestamp). */
  lastInboundAt?: number;
  /** Epoch ms (Meta timestamp) of a 131047 `failed` status: no message older than it reopens the window. */
  windowClosedAt?: number;
  /** Epoch ms; absent with `pausedBy: meta_handover`: paused until Meta gives control back. */
  pausedUntil?: number;
  pausedBy?: PauseSource;
  /** Epoch ms (Meta timestamp) of the latest handover change applied: an older one changes nothing. */
  handoverAt?: number;
  /** Epoch ms (Meta timestamp) of the newest event that set an id: an older event's ids never overwrite a newer one's. */
  identityAt?: number;
}

/** What one event tells about a contact. Times are Meta's (epoch ms). */
export type ContactFact =
  | { type: 'inbound'; at: number }
  | { type: 'call'; at: number }
  /** Meta refused a send of ours with 131047 (a `failed` status): the window is closed at `at`, whatever we thought. */
  | { type: 'window_closed'; at: number }
  | { type: 'business_echo'; at: number; pauseMinutes: number }
  | { type: 'thread_control_lost'; at: number }
  | { type: 'thread_control_back'; at: number }
  | { type: 'number_changed'; newWaId: string; at: number }
  | { type: 'user_id_changed'; newUserId: string; at: number }
  | { type: 'pause'; until: number }
  | { type: 'resume' };

/**
 * The ids an event names, learnt: a missing one is added; a different one replaces the stored one
 * only when the event is at least as new as the event that set it (Meta timestamp `at`), so a
 * message sent after a number change teaches the new number even when the change itself was lost
 * or came late, and a late retry of an old message never brings the old number back.
 */
export function learnIdentity(state: ContactState, seen: ContactIdentity, at?: number): ContactState {
  const newer = at !== undefined && (state.identityAt === undefined || at >= state.identityAt);
  const next = { ...state };
  let changed = false;
  for (const key of ['waId', 'userId', 'groupId'] as const) {
    const id = seen[key];
    if (id === undefined || next[key] === id) continue;
    if (next[key] === undefined || newer) {
      next[key] = id;
      changed = true;
    }
  }
  // The time of the event that set the ids as they are: only a change moves it (a plain message writes nothing for it).
  if (!changed) return state;
  if (at !== undefined && (state.identityAt === undefined || at > state.identityAt)) next.identityAt = at;
  return next;
}

export function applyFact(state: ContactState, fact: ContactFact): ContactState {
  switch (fact.type) {
    case 'inbound':
      return { ...openWindow(state, fact.at), lastInboundAt: Math.max(state.lastInboundAt ?? 0, fact.at) };
    case 'call':
      return openWindow(state, fact.at);
    case 'window_closed':
      if (state.windowClosedAt !== undefined && state.windowClosedAt >= fact.at) return state;
      return { ...state, windowOpenUntil: Math.min(state.windowOpenUntil ?? fact.at, fact.at), windowClosedAt: fact.at };
    case 'business_echo': {
      // A handover pause is Meta's and outlives any echo; an API pause is the operator's and is longer or kept.
      if (state.pausedBy === 'meta_handover') return state;
      const until = fact.at + fact.pauseMinutes * 60_000;
      if (state.pausedUntil !== undefined && state.pausedUntil >= until) return state;
      return { ...state, pausedUntil: until, pausedBy: 'business_app' };
    }
    case 'thread_control_lost':
      if (state.handoverAt !== undefined && state.handoverAt >= fact.at) return state;
      return { ...withoutPause(state), pausedBy: 'meta_handover', handoverAt: fact.at };
    case 'thread_control_back':
      if (state.handoverAt !== undefined && state.handoverAt >= fact.at) return state;
      return { ...(state.pausedBy === 'meta_handover' ? withoutPause(state) : state), handoverAt: fact.at };
    case 'number_changed':
      return learnIdentity(state, { waId: fact.newWaId }, fact.at);
    case 'user_id_changed':
      return learnIdentity(state, { userId: fact.newUserId }, fact.at);
    case 'pause':
      if (state.pausedBy === 'meta_handover') return state;
      return { ...state, pausedUntil: fact.until, pausedBy: 'api' };
    case 'resume':
      return withoutPause(state);
  }
}

/** A window only moves forward: a late webhook never reopens a closed window nor moves it back. */
function openWindow(state: ContactState, at: number): ContactState {
  // Meta said closed at windowClosedAt: a message from before it (a late retry) cannot reopen it.
  if (state.windowClosedAt !== undefined && at <= state.windowClosedAt) return state;
  const until = at + WINDOW_SECONDS * 1000;
  return state.windowOpenUntil !== undefined && state.windowOpenUntil >= until ? state : { ...state, windowOpenUntil: until };
}

function withoutPause(state: ContactState): ContactState {
  const { pausedUntil: _until, pausedBy: _by, ...rest } = state;
  return rest;
}

/** Whether the AI is paused at `now`, and by whom: what Bird gets as `conversation.paused`. */
export function activePause(state: ContactState | undefined, now: number): { until: string | null; by: PauseSource } | null {
  if (!state?.pausedBy) return null;
  if (state.pausedUntil === undefined) return state.pausedBy === 'meta_handover' ? { until: null, by: state.pausedBy } : null;
  return state.pausedUntil > now ? { until: new Date(state.pausedUntil).toISOString(), by: state.pausedBy } : null;
}

/** Fields that matter to a write: two states equal here need no write. */
export function sameState(a: ContactState, b: ContactState): boolean {
  const keys: Array<keyof ContactState> = ['waId', 'userId', 'groupId', 'windowOpenUntil', 'lastInboundAt', 'windowClosedAt', 'pausedUntil', 'pausedBy', 'handoverAt', 'identityAt'];
  return keys.every((key) => a[key] === b[key]);
}

/** Meta's timestamp (seconds, as a string) in epoch ms, or undefined when it is not a number. */
export function metaTimeMs(timestamp: string | undefined): number | undefined {
  const seconds = Number(timestamp);
  return timestamp !== undefined && timestamp !== '' && Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined;
}
