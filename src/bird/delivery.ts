import type { UnfixableMediaReason } from '../errors';
import type { BirdTarget } from '../lines/line';
import type { ConversationView } from '../conversation/contact-states';
import type { WhatsAppEvent } from '../meta/event';

/** The media of a message, already copied to S3 and checked; Bird reads it through the presigned URL. */
export interface DeliveredMedia {
  /** Presigned S3 GET URL: the only media address Bird ever sees. */
  url: string;
  mimeType?: string;
  sha256: string;
  size: number;
  s3Key: string;
}

/** One event to hand to the line's Bird AI Employee. */
export interface BirdDelivery {
  lineId: string;
  /** The line's Bird target with its secret fields already resolved to literal values by the caller. */
  target: BirdTarget;
  event: WhatsAppEvent;
  /** When the gateway received the webhook (ISO 8601). */
  receivedAt: string;
  media?: DeliveredMedia;
  /** Aborts the delivery (shutdown): the call in flight is cut and not retried. */
  signal?: AbortSignal;
  /**
   * Set instead of `media` when the file could not be fetched and no redrive could fix it (too
   * large, expired, no sha256 to check it by): the event still goes to Bird, with its text or
   * caption, so the AI can ask the contact to send the file again.
   */
  mediaError?: UnfixableMediaReason;
  /** The conversation's state once this event is applied (src/conversation): may the AI speak, and to whom. */
  conversation?: ConversationView;
}

export type BirdTransport = BirdTarget['transport'];

export type CircuitStateName = 'open' | 'half-open' | 'closed';

export interface CircuitStateChange {
  /** The Bird host the breaker guards (one breaker per host). */
  host: string;
  state: CircuitStateName;
}

/** What Bird answered an accepted delivery. */
export interface BirdAnswer {
  /**
   * The JSON body of a flow trigger's 2xx, parsed (undefined when empty or not JSON). A synchronous
   * Flow puts its `replies` here; the conversations transport answers nothing to act on.
   */
  flowResponse?: unknown;
  /** The 2xx status the flow trigger accepted with (the conversations transport makes several calls: none). */
  status?: number;
}

/**
 * Hands events to Bird. `deliver` resolves when Bird accepted the event (or the transport has
 * nothing to say for it), and otherwise throws a RetryableError or a PermanentError.
 */
export interface BirdClient {
  deliver(delivery: BirdDelivery): Promise<BirdAnswer>;
  /**
   * True while every Bird host called so far has an open breaker whose half-open probe is not yet
   * due: the worker should stop pulling new messages. One host's open breaker fails only its own
   * deliveries fast (they retry through the queue). Turns false when a probe may run.
   */
  readonly circuitOpen: boolean;
  /** Milliseconds until the earliest open breaker allows a probe; 0 when none is open. */
  circuitRetryAfterMs(): number;
  /** Subscribe to breaker transitions; returns the unsubscribe function. */
  onCircuitChange(listener: (change: CircuitStateChange) => void): () => void;
}
