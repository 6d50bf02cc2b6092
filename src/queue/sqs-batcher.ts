import { exponentialBackoff } from '../resilience/backoff';
import { sleep } from '../resilience/deadline';

/** SQS takes at most 10 entries per batch call. */
export const SQS_MAX_BATCH = 10;

export type BatchEntryResult = { ok: true } | { ok: false; code: string; message: string };

/** The part of a *Batch response this needs (DeleteMessageBatch, ChangeMessageVisibilityBatch). */
export interface SqsBatchResponse {
  Successful?: { Id?: string }[];
  Failed?: { Id?: string; Code?: string; Message?: string; SenderFault?: boolean }[];
}

export interface SqsBatcherOptions<E> {
  /** One *Batch call with up to 10 entries, each with a batch-unique Id. */
  send: (entries: (E & { Id: string })[]) => Promise<SqsBatchResponse>;
  /** How long the first entry waits for others before the batch goes out. */
  lingerMs: number;
  /** Attempts per entry for failures that may pass on a retry (network, server-side). */
  maxAttempts?: number;
  retryDelayMs?: number;
}

interface PendingEntry<E> {
  entry: E;
  attempt: number;
  resolve: (result: BatchEntryResult) => void;
}

/**
 * Collects entries from independent handlers into SQS *Batch calls (flushed when 10 are waiting
 * or after `lingerMs`), checks per-entry failures on a 200 and retries the ones that may pass.
 * Hand-written: the SDK has no batching helper, and sqs-consumer only batches within one receive.
 * Never rejects: each entry's promise resolves with its outcome.
 */
export class SqsBatcher<E extends object> {
  private readonly send: SqsBatcherOptions<E>['send'];
  private readonly lingerMs: number;
  private readonly maxAttempts: number;
  private readonly retryDelayMs: number;
  private pending: PendingEntry<E>[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(options: SqsBatcherOptions<E>) {
    this.send = options.send;
    this.lingerMs = options.lingerMs;
    this.maxAttempts = options.maxAttempts ?? 3;
    this.retryDelayMs = options.retryDelayMs ?? 100;
  }

  add(entry: E): Promise<BatchEntryResult> {
    return new Promise((resolve) => {
      this.pending.push({ entry, attempt: 1, resolve });
      if (this.pending.length >= SQS_MAX_BATCH) this.dispatch();
      else this.timer ??= setTimeout(() => this.dispatch(), this.lingerMs);
    });
  }

  /** Send everything waiting now and wait for all calls, retries included. */
  async flush(): Promise<void> {
    this.dispatch();
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  get size(): number {
    return this.pending.length;
  }

  private dispatch(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, SQS_MAX_BATCH);
      const call = this.sendBatch(batch).finally(() => this.inFlight.delete(call));
      this.inFlight.add(call);
    }
  }

  private async sendBatch(batch: PendingEntry<E>[]): Promise<void> {
    const retry: PendingEntry<E>[] = [];
    const fail = (entry: PendingEntry<E>, code: string, message: string, retryable: boolean) => {
      if (retryable && entry.attempt < this.maxAttempts) {
        entry.attempt += 1;
        retry.push(entry);
      } else {
        entry.resolve({ ok: false, code, message });
      }
    };

    let response: SqsBatchResponse;
    try {
      response = await this.send(batch.map((p, i) => ({ ...p.entry, Id: String(i) })));
    } catch (error) {
      const err = error as Error;
      for (const entry of batch) fail(entry, err.name || 'Error', err.message, true);
      return this.retryLater(retry);
    }
    const answered = new Set<string>();
    for (const ok of response.Successful ?? []) {
      const entry = batch[Number(ok.Id)];
      if (!entry || ok.Id === undefined) continue;
      answered.add(ok.Id);
      entry.resolve({ ok: true });
    }
    for (const failed of response.Failed ?? []) {
      const entry = batch[Number(failed.Id)];
      if (!entry || failed.Id === undefined) continue;
      answered.add(failed.Id);
      // SenderFault (e.g. ReceiptHandleIsInvalid) will fail the same way again.
      fail(entry, failed.Code ?? 'Unknown', failed.Message ?? '', failed.SenderFault !== true);
    }
    batch.forEach((entry, i) => {
      if (!answered.has(String(i))) fail(entry, 'Unanswered', 'Entry missing from the batch response', true);
    });
    return this.retryLater(retry);
  }

  private async retryLater(retry: PendingEntry<E>[]): Promise<void> {
    if (retry.length === 0) return;
    await sleep(exponentialBackoff(retry[0]?.attempt ?? 1, this.retryDelayMs, this.retryDelayMs * 8));
    await this.sendBatch(retry);
  }
}
