import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { RetryableError } from '../../errors';
import type { Logger } from '../../observability/logger';
import type { Registry } from '../../observability/metrics';
import { sqsCallsCounter } from '../../queue/sqs-calls';

/** SQS's longest per-message delay. */
export const MAX_TIMER_DELAY_SECONDS = 900;

/** A timer firing: which conversation, and when it was armed (for the logs). */
export interface TimerFire {
  pk: string;
  armedAt: number;
}

export interface TurnTimersOptions {
  sqs: SQSClient;
  /** SQS_TURN_QUEUE_URL: a small standard queue (FIFO queues take no per-message delay). */
  queueUrl: string;
  onFire: (fire: TimerFire) => Promise<void>;
  logger: Logger;
  registry: Registry;
  /** Long poll of the timer loop. */
  waitTimeSeconds: number;
  now?: () => number;
}

/**
 * Wakes a conversation's turn buffer at a given time. Two timers per arming: an in-process one,
 * precise to the millisecond, for the usual case; and a delayed SQS message, whole seconds (rounded
 * up), that survives a crash of this process and wakes whichever worker receives it. Firing twice is
 * harmless: the flush is idempotent.
 */
export class TurnTimers {
  private readonly local = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly calls;

  constructor(private readonly options: TurnTimersOptions) {
    this.calls = sqsCallsCounter(options.registry);
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** Resolves once the durable timer is on SQS (so a caller may consider the wake-up safe). */
  async arm(pk: string, dueAt: number): Promise<void> {
    const armedAt = this.now();
    const delayMs = Math.max(0, dueAt - armedAt);
    // The latest arming knows the latest state (its due time already weighs quietMs against maxWaitMs).
    const existing = this.local.get(pk);
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.local.delete(pk);
      this.options.onFire({ pk, armedAt }).catch((error: unknown) => this.options.logger.warn({ err: error }, 'turn flush failed; the durable timer retries it'));
    }, delayMs);
    timer.unref();
    this.local.set(pk, { at: dueAt, timer });
    this.calls.inc({ operation: 'SendMessage' });
    try {
      await this.options.sqs.send(
        new SendMessageCommand({
          QueueUrl: this.options.queueUrl,
          MessageBody: JSON.stringify({ pk, armedAt } satisfies TimerFire),
          DelaySeconds: Math.min(MAX_TIMER_DELAY_SECONDS, Math.ceil(delayMs / 1000)),
        }),
      );
    } catch (error) {
      throw new RetryableError('turn_timer_unavailable', 'Could not arm the turn timer on SQS', { cause: error });
    }
  }

  start(): void {
    this.loop ??= this.receiveLoop();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    for (const { timer } of this.local.values()) clearTimeout(timer);
    this.local.clear();
    await this.loop;
  }

  private async receiveLoop(): Promise<void> {
    while (!this.abort.signal.aborted) {
      try {
        this.calls.inc({ operation: 'ReceiveMessage' });
        const out = await this.options.sqs.send(
          new ReceiveMessageCommand({ QueueUrl: this.options.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: this.options.waitTimeSeconds, VisibilityTimeout: 30 }),
          { abortSignal: this.abort.signal },
        );
        const fired = await Promise.all(
          (out.Messages ?? []).map(async (message) => {
            try {
              await this.options.onFire(JSON.parse(message.Body ?? '{}') as TimerFire);
              return message.ReceiptHandle;
            } catch (error) {
              // Left on the queue: it comes back when its visibility lapses, and the flush is tried again.
              this.options.logger.warn({ err: error }, 'turn timer could not flush; it fires again in 30 s');
              return undefined;
            }
          }),
        );
        const done = fired.filter((h): h is string => h !== undefined);
        if (done.length > 0) {
          this.calls.inc({ operation: 'DeleteMessageBatch' });
          await this.options.sqs.send(
            new DeleteMessageBatchCommand({ QueueUrl: this.options.queueUrl, Entries: done.map((ReceiptHandle, i) => ({ Id: String(i), ReceiptHandle })) }),
          );
        }
      } catch (error) {
        if (this.abort.signal.aborted) break;
        this.options.logger.warn({ err: error }, 'turn timer receive failed; retrying in 1 s');
        await new Promise((r) => setTimeout(r, 1000).unref());
      }
    }
  }
}
