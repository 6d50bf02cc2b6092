import type { FailureReason } from '../errors';
import type { WhatsAppEvent } from '../meta/event';
import type { Logger } from '../observability/logger';
import type { ReceivedMessage } from '../queue/message';

/**
 * One SQS message while the worker handles its events: what they share. Not a conversation turn
 * (that is src/worker/turns): one queued payload, received once.
 */
export interface MessageHandling {
  message: ReceivedMessage;
  receivedAt: string;
  /** Set on a DLQ redrive: the one event key of the payload to deliver (see REDRIVE_ATTRIBUTES). */
  redriveKey?: string;
  signal?: AbortSignal;
  log: Logger;
  /** Every event of the payload: the contact state folds a person's later messages into one write. */
  events?: readonly WhatsAppEvent[];
}

/**
 * `skipped`: parked earlier (it is parked once), or not the event a redrive is for. `not_forwarded`:
 * a status the line keeps from Bird (forwardStatuses), applied and journaled.
 */
export type EventOutcome = { result: 'delivered' | 'not_forwarded' | 'duplicate' | 'parked' | 'skipped' } | { result: 'retry'; delayMs?: number; reason: FailureReason };
