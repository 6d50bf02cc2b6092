import { RetryableError, reasonOf } from '../errors';
import type { Logger } from '../observability/logger';
import { sharedCounter, type Counter, type Registry } from '../observability/metrics';
import { GroupSequencer } from './group-sequencer';
import type { ReceivedMessage } from './message';
import type { HandlerOutcome } from './poller-options';
import { retryDelaySeconds } from './retry-schedule';

export interface GroupHoldOptions {
  /**
   * The retry backoff of the poller that settles these messages (its retryBaseSeconds and
   * retryMaxSeconds): the delay of a retried message is fixed here with the poller's rule, so the
   * messages held behind it can be given a longer one.
   */
  retryPolicy: { baseSeconds: number; maxSeconds: number };
  /** The retry reason of a message handed back behind its group's retried one (`conversation_held`, `recipient_held`). */
  heldReason: string;
  /** `<prefix>_group_held_total{cause}`: the poller's metricsPrefix. */
  metricsPrefix: string;
  logger: Logger;
  registry: Registry;
  now?: () => number;
}

/** A retried message, and until when its group waits for it in this process. */
interface Blocker {
  messageId: string;
  until: number;
}

/** How much later than the retried message its group's held messages come back, so they cannot overtake it. */
export const HELD_MARGIN_SECONDS = 1;

/** What the hold needs of a message: which one it is, and how often SQS gave it (the backoff step). */
export type HeldMessage = Pick<ReceivedMessage, 'messageId' | 'receiveCount'>;

/**
 * Order within a FIFO group in one process, for any handler (the worker's conversations, the
 * sender's recipients). Runs one message per group at a time, in the order received, groups in
 * parallel (GroupSequencer). When a message must be retried, its delay is fixed here (the top of the
 * poller's backoff step, or longer when the handler asks), the messages of its group already queued
 * behind it go back unprocessed one second later, and a message of the group received afterwards
 * goes back too until the retried one returns: real SQS holds a group across processes, but not
 * within one receive batch, and the local stand-in not at all.
 * State is per group and pruned: the sequencer forgets a group once it drains, a blocker once its
 * message returns or its time has passed. The poller's shutdown signal cancels the messages still
 * waiting for their turn: they go back at once and never start after the shutdown bound.
 */
export class GroupHold {
  private readonly sequencer = new GroupSequencer<HandlerOutcome>((outcome) => outcome.action === 'retry');
  private readonly blocked = new Map<string, Blocker>();
  /** The earliest `until` among the blockers: no sweep before it. */
  private nextExpiry = Number.POSITIVE_INFINITY;
  private readonly held: Counter<'cause'>;
  private readonly now: () => number;

  constructor(private readonly options: GroupHoldOptions) {
    this.now = options.now ?? Date.now;
    this.held = sharedCounter(options.registry, {
      name: `${options.metricsPrefix}_group_held_total`,
      help: 'FIFO messages handed back unprocessed because an earlier message of their group is being retried (queued: received with it; blocked: received after it; shutdown: cancelled while waiting for their turn)',
      labelNames: ['cause'],
    });
  }

  /** Entries kept in memory (groups running or queued, groups waiting for a retried message): what pruning bounds. */
  get stateSize(): number {
    return this.sequencer.activeGroups + this.blocked.size;
  }

  /** Groups with a message running or queued. */
  get activeGroups(): number {
    return this.sequencer.activeGroups;
  }

  /** Handle `message` in its turn within `group`; a thrown error becomes a retry outcome. */
  async run(group: string, message: HeldMessage, handle: () => Promise<HandlerOutcome>, signal?: AbortSignal): Promise<HandlerOutcome> {
    this.pruneExpired();
    const result = await this.sequencer.run(group, () => this.inTurn(group, message, handle), signal);
    if (result.ran) return result.value;
    if (signal?.aborted) {
      this.held.inc({ cause: 'shutdown' });
      // The poller hands a retry back at once on shutdown, whatever its delay.
      return { action: 'retry', reason: this.options.heldReason, delaySeconds: 0 };
    }
    this.held.inc({ cause: 'queued' });
    return this.holdBack(group, message);
  }

  private async inTurn(group: string, message: HeldMessage, handle: () => Promise<HandlerOutcome>): Promise<HandlerOutcome> {
    const blocker = this.blocked.get(group);
    if (blocker && blocker.messageId !== message.messageId && this.now() < blocker.until) {
      this.held.inc({ cause: 'blocked' });
      return this.holdBack(group, message);
    }
    if (blocker) this.blocked.delete(group);

    let outcome: HandlerOutcome;
    try {
      outcome = await handle();
    } catch (error) {
      // What the poller would make of it, turned into an outcome here so its delay is known.
      const retryAfterMs = error instanceof RetryableError ? error.retryAfterMs : undefined;
      const reason = reasonOf(error);
      this.options.logger.warn({ err: error, reason, messageId: message.messageId }, 'Handler failed; the message will be retried');
      outcome = { action: 'retry', reason, ...(retryAfterMs !== undefined ? { delaySeconds: Math.ceil(retryAfterMs / 1000) } : {}) };
    }
    if (outcome.action !== 'retry') return outcome;
    const delaySeconds = this.retryDelay(outcome, message.receiveCount);
    this.block(group, { messageId: message.messageId, until: this.now() + delaySeconds * 1000 });
    return { ...outcome, delaySeconds };
  }

  /**
   * The one delay rule: the top of the poller's backoff step, not a jittered point in it (the poller
   * takes the longer of its own jittered backoff and this, so only the top makes the delay it applies
   * the one computed here), or what the handler asked when that is longer.
   */
  private retryDelay(outcome: { delaySeconds?: number }, receiveCount: number): number {
    const { baseSeconds, maxSeconds } = this.options.retryPolicy;
    const stepTop = Math.round(Math.min(maxSeconds, baseSeconds * 2 ** Math.max(0, receiveCount - 1)));
    return Math.max(stepTop, retryDelaySeconds(outcome, receiveCount, this.options.retryPolicy));
  }

  /** Back to the queue unprocessed, to come back after the message its group waits for. */
  private holdBack(group: string, message: HeldMessage): HandlerOutcome {
    const blocker = this.blocked.get(group);
    const waitSeconds = blocker ? Math.max(0, Math.ceil((blocker.until - this.now()) / 1000)) : this.options.retryPolicy.baseSeconds;
    this.options.logger.debug({ messageId: message.messageId, waitsFor: blocker?.messageId }, 'held back behind a retried message of its group');
    return { action: 'retry', reason: this.options.heldReason, delaySeconds: waitSeconds + HELD_MARGIN_SECONDS };
  }

  private block(group: string, blocker: Blocker): void {
    this.blocked.set(group, blocker);
    this.nextExpiry = Math.min(this.nextExpiry, blocker.until);
  }

  /** Forget the blockers whose time has passed: their message is back on the queue, and nothing waits for it here. */
  private pruneExpired(): void {
    const now = this.now();
    if (now < this.nextExpiry) return;
    let next = Number.POSITIVE_INFINITY;
    for (const [group, blocker] of this.blocked) {
      if (blocker.until <= now) this.blocked.delete(group);
      else next = Math.min(next, blocker.until);
    }
    this.nextExpiry = next;
  }
}
