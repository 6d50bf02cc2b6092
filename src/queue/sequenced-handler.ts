import { RetryableError, reasonOf } from '../errors';
import type { Logger } from '../observability/logger';
import { Counter, type Registry } from '../observability/metrics';
import { GroupSequencer } from './group-sequencer';
import type { ReceivedMessage } from './message';
import type { HandlerContext, HandlerOutcome, MessageHandler } from './poller';
import { retryDelaySeconds } from './retry-schedule';

export interface SequencedHandlerOptions {
  handler: MessageHandler;
  logger: Logger;
  registry: Registry;
  /** The poller's retry backoff (retryBaseSeconds / retryMaxSeconds): the delay a retried message gets is fixed here, so the messages held behind it can wait longer. */
  retryPolicy: { baseSeconds: number; maxSeconds: number };
  now?: () => number;
}

/** A retried message, and until when its group waits for it in this process. */
interface Blocker {
  messageId: string;
  until: number;
}

/** How much later than the retried message its group's held messages come back, so they cannot overtake it. */
const HELD_MARGIN_SECONDS = 1;

/**
 * Conversation order in the worker, around the message handler. On a FIFO queue each message
 * carries its conversation's MessageGroupId; this runs one message per group at a time, in the
 * order the poller received them, groups in parallel (GroupSequencer). When a message must be
 * retried, the messages of its group this process already holds are handed back unprocessed with a
 * longer delay, and a message of that group received later is handed back too until the retried
 * one returns: SQS holds a group while one of its messages is in flight, but only on real SQS
 * (the local stand-in does not), and only across processes' receives, not within one batch.
 * Messages from a standard queue (no group) go straight to the handler.
 */
export class SequencedHandler {
  private readonly sequencer = new GroupSequencer<HandlerOutcome>((outcome) => outcome.action === 'retry');
  private readonly blocked = new Map<string, Blocker>();
  private readonly heldBack: Counter<'cause'>;
  private readonly now: () => number;

  constructor(private readonly options: SequencedHandlerOptions) {
    this.now = options.now ?? Date.now;
    this.heldBack = new Counter({
      name: 'wa_ingress_worker_group_held_total',
      help: 'FIFO messages handed back unprocessed because an earlier message of their conversation is being retried (queued: received with it; blocked: received after it)',
      labelNames: ['cause'],
      registers: [options.registry],
    });
  }

  /** Conversations with a message running or queued in this process. */
  get activeGroups(): number {
    return this.sequencer.activeGroups;
  }

  readonly handle: MessageHandler = async (message, context) => {
    const group = message.groupId;
    if (group === undefined) return this.options.handler(message, context);
    const result = await this.sequencer.run(group, () => this.inGroup(group, message, context));
    if (result.ran) return result.value;
    this.heldBack.inc({ cause: 'queued' });
    return this.holdBack(group, message);
  };

  private async inGroup(group: string, message: ReceivedMessage, context: HandlerContext | undefined): Promise<HandlerOutcome> {
    const blocker = this.blocked.get(group);
    if (blocker && blocker.messageId !== message.messageId && this.now() < blocker.until) {
      this.heldBack.inc({ cause: 'blocked' });
      return this.holdBack(group, message);
    }
    if (blocker) this.blocked.delete(group);

    let outcome: HandlerOutcome;
    try {
      outcome = await this.options.handler(message, context);
    } catch (error) {
      // What the poller would make of it, turned into an outcome here so its delay is known.
      const retryAfterMs = error instanceof RetryableError ? error.retryAfterMs : undefined;
      const reason = reasonOf(error);
      this.options.logger.warn({ err: error, reason, messageId: message.messageId }, 'Handler failed; the message will be retried');
      outcome = { action: 'retry', reason, ...(retryAfterMs !== undefined ? { delaySeconds: Math.ceil(retryAfterMs / 1000) } : {}) };
    }
    if (outcome.action !== 'retry') return outcome;
    // The top of the backoff step, not a jittered point in it: the poller takes the longer of its own
    // jittered backoff and this, so only the top makes the delay it applies the one computed here.
    const { baseSeconds, maxSeconds } = this.options.retryPolicy;
    const stepTop = Math.round(Math.min(maxSeconds, baseSeconds * 2 ** Math.max(0, message.receiveCount - 1)));
    const delaySeconds = Math.max(stepTop, retryDelaySeconds(outcome, message.receiveCount, this.options.retryPolicy));
    this.block(group, { messageId: message.messageId, until: this.now() + delaySeconds * 1000 });
    return { ...outcome, delaySeconds };
  }

  /** Back to the queue unprocessed, to come back after the message its group waits for. */
  private holdBack(group: string, message: ReceivedMessage): HandlerOutcome {
    const blocker = this.blocked.get(group);
    const waitSeconds = blocker ? Math.max(0, Math.ceil((blocker.until - this.now()) / 1000)) : this.options.retryPolicy.baseSeconds;
    this.options.logger.debug({ messageId: message.messageId, waitsFor: blocker?.messageId }, 'held back behind a retried message of its conversation');
    return { action: 'retry', reason: 'conversation_held', delaySeconds: waitSeconds + HELD_MARGIN_SECONDS };
  }

  private block(group: string, blocker: Blocker): void {
    this.blocked.set(group, blocker);
    if (this.blocked.size < 1000) return;
    const now = this.now();
    for (const [key, entry] of this.blocked) if (entry.until < now) this.blocked.delete(key);
  }
}
