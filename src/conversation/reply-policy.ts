import { activePause, type ContactState } from './contact-state';

/** Who asked for a send: the AI (a flow's `replies`, a Bird webhook) or the business itself (the send API, the CLI). */
export type ReplyOrigin = 'api' | 'cli' | 'flow_reply' | 'bird_webhook';

/** A line's `windowFallbackTemplate`: what the AI's free-form reply becomes once the window is closed. */
export interface WindowFallbackTemplate {
  name: string;
  /** Meta's language code, e.g. "es_MX". */
  language: string;
  components?: Array<Record<string, unknown> & { type: string }>;
}

export interface ReplyQuestion {
  source: ReplyOrigin;
  /** The Meta message type of the send body (`template`, `text`, `image`…). */
  type: string;
  /** The contact's record, or undefined when there is none (right after deploying, a first send). */
  state: ContactState | undefined;
  fallback?: WindowFallbackTemplate;
  /** Epoch ms. */
  now: number;
}

/** Meta's template message for a fallback: the body the sender posts instead of the AI's free-form reply. */
export interface TemplateBody {
  type: 'template';
  template: { name: string; language: { code: string }; components?: WindowFallbackTemplate['components'] };
  [key: string]: unknown;
}

export type ReplyDecision =
  | { action: 'send' }
  | { action: 'suppress'; reason: 'paused' }
  | { action: 'fallback'; body: TemplateBody; windowClosedAt: number }
  | { action: 'refuse'; reason: 'outside_customer_service_window'; windowClosedAt: number };

const AI_SOURCES: ReadonlySet<ReplyOrigin> = new Set(['flow_reply', 'bird_webhook']);

/**
 * May this send go out now, and as what? Pure; the one place that decides (ARCHITECTURE §6).
 * - The AI never talks over a human: while the contact is paused, its replies are suppressed. The
 *   business's own sends (API, CLI) still go.
 * - No free-form message into a window known closed (the record holds a window in the past): a
 *   template always may; the AI's reply becomes the line's fallback template when it has one;
 *   otherwise it is refused before any Graph call. No record, or no window on it: send (Meta's
 *   131047 then says what it knows, as before).
 */
export function decideReply(question: ReplyQuestion): ReplyDecision {
  const { source, type, state, fallback, now } = question;
  const fromAi = AI_SOURCES.has(source);
  if (fromAi && activePause(state, now)) return { action: 'suppress', reason: 'paused' };
  if (type === 'template') return { action: 'send' };
  const windowClosedAt = state?.windowOpenUntil;
  if (windowClosedAt === undefined || windowClosedAt > now) return { action: 'send' };
  if (fromAi && fallback) return { action: 'fallback', body: templateBody(fallback), windowClosedAt };
  return { action: 'refuse', reason: 'outside_customer_service_window', windowClosedAt };
}

export function templateBody(fallback: WindowFallbackTemplate): TemplateBody {
  return {
    type: 'template',
    template: { name: fallback.name, language: { code: fallback.language }, ...(fallback.components ? { components: fallback.components } : {}) },
  };
}
