import { ChangeMessageVisibilityBatchCommand, DeleteMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Logger } from '../observability/logger';
import type { PollerMetrics } from './poller-metrics';
import { SqsBatcher, type BatchEntryResult } from './sqs-batcher';

/** A message this process holds: the latest receipt handle and when its visibility was last extended. */
export interface HeldMessage {
  readonly messageId: string;
  /** Replaced when SQS hands this process the same message again: only the latest handle is valid. */
  receiptHandle: string;
  extendedAt: number;
  extending: boolean;
  /** Settled (deleted, retried or handed back): the heartbeat leaves it alone. */
  settled: boolean;
  heartbeat?: Promise<unknown>;
}

export interface VisibilityKeeperOptions {
  sqs: SQSClient;
  queueUrl: string;
  visibilityTimeoutSeconds: number;
  /** Visibility is renewed at least this often while a message is held. */
  heartbeatIntervalMs: number;
  /** How long a delete waits for others to share its DeleteMessageBatch call. */
  deleteLingerMs: number;
  metrics: PollerMetrics;
  logger: Logger;
}

/**
 * Keeps held messages hidden while they are handled (the heartbeat) and settles them: delete,
 * retry after a delay, or hand back at once (visibility 0). Deletes and visibility changes are
 * batched across messages.
 */
export class VisibilityKeeper {
  private readonly held = new Map<string, HeldMessage>();
  private readonly deletes: SqsBatcher<{ ReceiptHandle: string }>;
  private readonly visibility: SqsBatcher<{ ReceiptHandle: string; VisibilityTimeout: number }>;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: VisibilityKeeperOptions) {
    const { sqs, queueUrl, metrics } = options;
    this.deletes = new SqsBatcher({
      lingerMs: options.deleteLingerMs,
      send: (Entries) => metrics.call('DeleteMessageBatch', () => sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries }))),
    });
    this.visibility = new SqsBatcher({
      lingerMs: 5,
      send: (Entries) =>
        metrics.call('ChangeMessageVisibilityBatch', () => sqs.send(new ChangeMessageVisibilityBatchCommand({ QueueUrl: queueUrl, Entries }))),
    });
  }

  get size(): number {
    return this.held.size;
  }

  /** Messages held and not settled yet. */
  unsettled(): HeldMessage[] {
    return [...this.held.values()].filter((m) => !m.settled);
  }

  start(): void {
    // Ticks at half the interval, so each message is renewed between one half and one interval after the last.
    this.timer = setInterval(() => this.heartbeat(), this.options.heartbeatIntervalMs / 2);
    this.timer.unref();
  }

  stopHeartbeat(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Hold a received message. Undefined when it is already held: visibility lapsed (a missed
   * heartbeat) and SQS gave it to us again; the newer receipt handle, the only one that deletes, is kept.
   */
  hold(messageId: string, receiptHandle: string): HeldMessage | undefined {
    const current = this.held.get(messageId);
    if (current) {
      current.receiptHandle = receiptHandle;
      current.extendedAt = Date.now();
      return undefined;
    }
    const message: HeldMessage = { messageId, receiptHandle, extendedAt: Date.now(), extending: false, settled: false };
    this.held.set(messageId, message);
    return message;
  }

  release(message: HeldMessage): void {
    this.held.delete(message.messageId);
  }

  delete(message: HeldMessage, log: Logger): void {
    message.settled = true;
    void this.deletes.add({ ReceiptHandle: message.receiptHandle }).then((result) => {
      if (result.ok) this.options.metrics.deleted.inc();
      else this.entryFailed('DeleteMessageBatch', result, log, 'Delete failed; the message will be delivered again (dedupe skips its events)');
    });
  }

  /** Leave the message hidden for `delaySeconds`, then SQS delivers it again. */
  async retryAfter(message: HeldMessage, delaySeconds: number, log: Logger): Promise<void> {
    message.settled = true;
    // A heartbeat still on its way could land after the retry delay and overwrite it.
    await message.heartbeat;
    void this.visibility.add({ ReceiptHandle: message.receiptHandle, VisibilityTimeout: delaySeconds }).then((result) => {
      if (!result.ok) this.entryFailed('ChangeMessageVisibilityBatch', result, log, 'Could not set the retry delay; the message comes back when its visibility lapses');
    });
  }

  /** Make messages visible again at once (shutdown): another worker takes them now, not after the visibility timeout. */
  async handBack(receiptHandles: string[], log: Logger): Promise<number> {
    const results = await Promise.all(receiptHandles.map((ReceiptHandle) => this.visibility.add({ ReceiptHandle, VisibilityTimeout: 0 })));
    for (const result of results) this.entryFailed('ChangeMessageVisibilityBatch', result, log, 'Could not hand a message back; it comes back when its visibility lapses');
    return results.filter((r) => r.ok).length;
  }

  /** Hand back held messages (after their heartbeats landed, which would hide them again). */
  async handBackHeld(messages: HeldMessage[], log: Logger): Promise<number> {
    for (const message of messages) message.settled = true;
    await Promise.all(messages.map((m) => m.heartbeat));
    return this.handBack(
      messages.map((m) => m.receiptHandle),
      log,
    );
  }

  /** Send every pending delete and visibility change now and wait for them, retries included. */
  flush(): Promise<unknown> {
    return Promise.all([this.deletes.flush(), this.visibility.flush()]);
  }

  private heartbeat(): void {
    const now = Date.now();
    const { heartbeatIntervalMs, visibilityTimeoutSeconds, logger } = this.options;
    for (const message of this.held.values()) {
      if (message.settled || message.extending || now - message.extendedAt < heartbeatIntervalMs / 2) continue;
      message.extending = true;
      message.heartbeat = this.visibility.add({ ReceiptHandle: message.receiptHandle, VisibilityTimeout: visibilityTimeoutSeconds }).then((result) => {
        message.extending = false;
        if (result.ok) message.extendedAt = now;
        else this.entryFailed('ChangeMessageVisibilityBatch', result, logger.child({ messageId: message.messageId }), 'Heartbeat failed; retrying on the next tick');
      });
    }
  }

  private entryFailed(operation: string, result: BatchEntryResult, log: Logger, message: string): void {
    if (result.ok) return;
    this.options.metrics.failures.inc({ operation });
    log.warn({ operation, code: result.code, detail: result.message }, message);
  }
}
