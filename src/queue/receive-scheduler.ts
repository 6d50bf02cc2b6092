import type { Message } from '@aws-sdk/client-sqs';
import type { Logger } from '../observability/logger';
import { exponentialBackoff } from '../resilience/backoff';
import { sleep, within } from '../resilience/deadline';
import type { PollerMetrics } from './poller-metrics';
import { SQS_MAX_BATCH } from './sqs-batcher';

export interface ReceiveSchedulerOptions {
  /** One ReceiveMessage call for up to `maxMessages`. `signal` aborts only as a last resort (see stop). */
  receive: (maxMessages: number, signal: AbortSignal) => Promise<Message[]>;
  /**
   * Start work on a received message; true when it took a slot (false: e.g. the message is already
   * in hand). A sequencer that orders messages per group can sit here, between receive and handler.
   */
  dispatch: (message: Message) => boolean;
  /** Messages a receive returned after stop() began: hand them back at once rather than hide them. */
  handBack: (messages: Message[]) => void;
  concurrency: number;
  receiveLoops: number;
  /** With fewer than 10 free slots (and some busy), wait this long for more to free up, so receives ask for full batches. */
  receiveGatherMs: number;
  /**
   * After a receive brings back some messages but fewer than it asked for, the next receive waits
   * this long, so what arrives meanwhile comes in one call; 0 receives again at once.
   */
  receiveLingerMs: number;
  pauseCheckMs: number;
  /** True: receive nothing new (e.g. every Bird breaker is open). */
  shouldPause: () => boolean;
  metrics: PollerMetrics;
  logger: Logger;
}

/**
 * Decides when to receive and how many: up to `concurrency` messages in flight, topped up by a few
 * parallel receive loops whenever slots free up; pauses on request; backs off while SQS fails.
 * At low rates it gathers: after a short receive (the queue ran dry) the next one lingers for
 * `receiveLingerMs`, and the extra loops stand by until a receive comes back full (a backlog), so one
 * long poll, not several, is out to take each newcomer on its own.
 */
export class ReceiveScheduler {
  private running = false;
  /** Cuts idle waits short on stop. */
  private readonly wake = new AbortController();
  /** Aborts receives still out when stop()'s budget ends: only then, because an aborted receive may have taken messages. */
  private readonly receives = new AbortController();
  /** Slots held by dispatched messages, plus slots promised to receive calls still out. */
  private busy = 0;
  private reserved = 0;
  /** Since when the loops have been waiting for a full batch of free slots. */
  private gatheringSince: number | undefined;
  private slotWaiters: Array<() => void> = [];
  private loops: Promise<void>[] = [];
  private paused = false;
  /** The last receive came back full: the queue has a backlog and every loop receives. */
  private backlog = false;
  private backlogWaiters: Array<() => void> = [];
  /** No receive starts before this (epoch ms): the linger after a short receive. */
  private lingerUntil = 0;

  constructor(private readonly options: ReceiveSchedulerOptions) {}

  start(): void {
    this.running = true;
    for (let i = 0; i < this.options.receiveLoops; i++) this.loops.push(this.loop(i));
  }

  /**
   * Stop receiving. Receives already out are let to return (a long poll ends within its wait
   * time), and what they bring is handed back; only if that takes longer than `budgetMs` are they
   * aborted, which hides what they took until its visibility lapses.
   */
  async stop(budgetMs: number): Promise<void> {
    this.running = false;
    this.wake.abort();
    this.wakeSlotWaiters();
    this.wakeBackloggers();
    if (await within(Promise.allSettled(this.loops), budgetMs)) return;
    this.options.logger.warn({ budgetMs }, 'Shutdown: a receive did not return within the budget; aborting it (what it took comes back when its visibility lapses)');
    this.receives.abort();
    await Promise.allSettled(this.loops);
  }

  /** A dispatched message is done: its slot is free. */
  slotFreed(): void {
    this.busy -= 1;
    this.wakeSlotWaiters();
  }

  private async loop(index: number): Promise<void> {
    let failures = 0;
    while (this.running) {
      try {
        // The first loop always long-polls; the others only help with a backlog.
        if (index > 0 && !this.backlog && this.options.receiveLingerMs > 0) {
          await this.backlogOrStop();
          continue;
        }
        await this.receiveOnce();
        failures = 0;
      } catch (error) {
        this.wakeSlotWaiters(); // the failed receive's reserved slots are free again
        if (!this.running) break;
        failures += 1;
        const backoffMs = Math.round(exponentialBackoff(failures, 200, 10_000));
        this.options.logger.warn({ err: error, failures, backoffMs }, 'SQS ReceiveMessage failed; backing off');
        await sleep(backoffMs, this.wake.signal);
      }
    }
  }

  /** One turn of a loop: wait while paused or full, else receive what fits and dispatch each message. */
  private async receiveOnce(): Promise<void> {
    const { concurrency, receiveGatherMs, pauseCheckMs } = this.options;
    if (this.pauseRequested()) {
      this.setPaused(true);
      return sleep(pauseCheckMs, this.wake.signal);
    }
    this.setPaused(false);
    const lingerLeft = this.lingerUntil - Date.now();
    if (lingerLeft > 0) return sleep(lingerLeft, this.wake.signal);
    const want = Math.min(SQS_MAX_BATCH, concurrency - this.busy - this.reserved);
    if (want <= 0) return this.slotFreedOrStop();
    if (want < Math.min(SQS_MAX_BATCH, concurrency) && this.busy > 0) {
      // One window for all loops: otherwise each would take its share of a few free slots.
      this.gatheringSince ??= Date.now();
      const left = receiveGatherMs - (Date.now() - this.gatheringSince);
      if (left > 0) {
        // Cancel the losing sleep, or its timer and abort listener pile up across wake-ups.
        let cancel: () => void = () => undefined;
        await Promise.race([this.slotFreedOrStop(), sleep(left, this.wake.signal, (c) => (cancel = c))]);
        cancel();
        return;
      }
    }
    this.gatheringSince = undefined;
    this.reserved += want;
    let messages: Message[];
    try {
      messages = await this.options.receive(want, this.receives.signal);
    } finally {
      this.reserved -= want;
    }
    if (!this.running) {
      if (messages.length > 0) this.options.handBack(messages);
      return;
    }
    for (const message of messages) if (this.options.dispatch(message)) this.busy += 1;
    if (messages.length < want) this.wakeSlotWaiters();
    this.noteFill(messages.length, want);
  }

  /** An empty receive (a long poll that ended idle) lingers not: the next long poll waits for the next message anyway. */
  private noteFill(received: number, want: number): void {
    const { receiveLingerMs } = this.options;
    this.backlog = received >= want;
    if (this.backlog) return this.wakeBackloggers();
    if (received > 0 && receiveLingerMs > 0) this.lingerUntil = Date.now() + receiveLingerMs;
  }

  /** A throwing shouldPause must not stop the loop: it counts as "not paused", and is logged. */
  private pauseRequested(): boolean {
    try {
      return this.options.shouldPause();
    } catch (error) {
      this.options.logger.error({ err: error }, 'shouldPause() threw; receiving as if not paused');
      return false;
    }
  }

  private setPaused(paused: boolean): void {
    if (paused === this.paused) return;
    this.paused = paused;
    this.options.metrics.paused.set(paused ? 1 : 0);
    this.options.logger.info(paused ? 'Receiving paused (shouldPause)' : 'Receiving resumed');
  }

  private slotFreedOrStop(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.slotWaiters.push(resolve));
  }

  private backlogOrStop(): Promise<void> {
    if (!this.running || this.backlog) return Promise.resolve();
    return new Promise((resolve) => this.backlogWaiters.push(resolve));
  }

  private wakeBackloggers(): void {
    const waiters = this.backlogWaiters;
    this.backlogWaiters = [];
    for (const wake of waiters) wake();
  }

  private wakeSlotWaiters(): void {
    const waiters = this.slotWaiters;
    this.slotWaiters = [];
    for (const wake of waiters) wake();
  }
}
