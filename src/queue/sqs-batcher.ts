import { exponentialBackoff } from '../resilience/backoff';

/** SQS takes at most 10 entries per batch call. */
export const SQS_MAX_BATCH = 10;
/** SendMessageBatch takes at most 1 MiB in all. */
export const SQS_MAX_BATCH_BYTES = 1024 * 1024;
/** The `code` of an entry whose deadline passed before SQS accepted it. */
export const DEADLINE_PASSED = 'DeadlinePassed';
/** The `code` of an entry added as a promise that rejected: it was never sent. */
export const ENTRY_NOT_PREPARED = 'EntryNotPrepared';

export type BatchEntryResult =
  | { ok: true; messageId?: string }
  /** `senderFault`: SQS refused the entry itself; sending it again fails the same way. */
  | { ok: false; code: string; message: string; senderFault?: boolean };

/** The part of a *Batch response this needs (SendMessageBatch, DeleteMessageBatch, ChangeMessageVisibilityBatch). */
export interface SqsBatchResponse {
  Successful?: { Id?: string; MessageId?: string }[];
  Failed?: { Id?: string; Code?: string; Message?: string; SenderFault?: boolean }[];
}

export interface SqsBatcherOptions<E> {
  /** One *Batch call with up to 10 entries, each with a batch-unique Id; `signal` ends it at the batch's earliest deadline. */
  send: (entries: (E & { Id: string })[], signal?: AbortSignal) => Promise<SqsBatchResponse>;
  /** How long the first entry waits for others before the batch goes out. */
  lingerMs: number;
  /** Attempts per entry for failures that may pass on a retry (network, server-side); an entry's deadline also ends them. */
  maxAttempts?: number;
  retryDelayMs?: number;
  /** The longest wait between two attempts of an entry (default 8 × retryDelayMs). */
  maxRetryDelayMs?: number;
  /** Bytes an entry counts towards the 1 MiB a batch call may carry; without it only the 10 entries limit a batch. */
  sizeOf?: (entry: E) => number;
  /** Batch calls out at once (default unbounded); entries keep accumulating meanwhile, so batches grow when SQS is slow. */
  maxInFlight?: number;
}

export interface AddOptions {
  /** FIFO MessageGroupId: a group's entries go out in the order added, never in two calls at once. */
  group?: string;
  /** Epoch ms: past it the entry resolves with DEADLINE_PASSED and is not sent again. */
  deadline?: number;
}

/** A caller's wait for its entry's outcome: answered once, by SQS's answer, a give-up or the deadline. */
interface Ticket {
  settled: boolean;
  finish: (result: BatchEntryResult) => void;
}

interface PendingEntry<E> {
  entry: E;
  /** Add order: a retried entry goes back to its place, ahead of its group's later entries. */
  seq: number;
  bytes: number;
  group?: string;
  deadline?: number;
  attempt: number;
  ticket: Ticket;
}

/**
 * Collects entries from independent callers into SQS *Batch calls (flushed when 10 entries or
 * 1 MiB are waiting, or after `lingerMs`), checks per-entry failures on a 200 and retries the ones
 * that may pass, each caller waiting only for its own entry. On a FIFO queue (entries added with a
 * `group`) a group has one call out at a time: several calls in flight could land in any order,
 * while within one call SQS keeps the entries' order. An entry added as a promise (a body still
 * going to S3) takes its place on arrival and holds its group until it is ready.
 * Hand-written: the SDK has no batching helper, and sqs-consumer only batches within one receive.
 * Never rejects: each entry's promise resolves with its outcome.
 */
export class SqsBatcher<E extends object> {
  private readonly maxAttempts: number;
  private readonly retryDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private pending: PendingEntry<E>[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private sequence = 0;
  private readonly inFlight = new Set<Promise<void>>();
  /** Entries being prepared or waiting for a retry: flush() waits for them too. */
  private readonly waiting = new Set<Promise<void>>();
  /** Per group: entries in a call, waiting for a retry, or being prepared. The group's later entries wait. */
  private readonly groupsOut = new Map<string, number>();

  constructor(private readonly options: SqsBatcherOptions<E>) {
    this.maxAttempts = options.maxAttempts ?? 3;
    this.retryDelayMs = options.retryDelayMs ?? 100;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? this.retryDelayMs * 8;
  }

  add(entry: E | Promise<E>, options: AddOptions = {}): Promise<BatchEntryResult> {
    const seq = (this.sequence = (this.sequence + 1) % 1e9);
    return new Promise((resolve) => {
      const ticket: Ticket = {
        settled: false,
        finish: (result) => {
          if (ticket.settled) return;
          ticket.settled = true;
          clearTimeout(deadlineTimer);
          resolve(result);
        },
      };
      const deadlineTimer =
        options.deadline === undefined
          ? undefined
          : setTimeout(() => ticket.finish({ ok: false, code: DEADLINE_PASSED, message: 'SQS did not accept the entry before its deadline' }), Math.max(0, options.deadline - Date.now()));
      const ready = (value: E) => {
        if (ticket.settled) return;
        this.enqueue({ entry: value, seq, bytes: this.options.sizeOf?.(value) ?? 0, group: options.group, deadline: options.deadline, attempt: 0, ticket });
      };
      if (!(entry instanceof Promise)) return ready(entry);
      this.groupOut(options.group, +1);
      const preparing = entry
        .then(ready, (error: unknown) => ticket.finish({ ok: false, code: ENTRY_NOT_PREPARED, message: error instanceof Error ? error.message : String(error) }))
        .finally(() => {
          this.waiting.delete(preparing);
          // Released right after the entry joined the pending list (or failed): its group's later entries follow it.
          this.groupOut(options.group, -1);
          this.kick();
        });
      this.waiting.add(preparing);
    });
  }

  /** Send everything waiting now and wait for all calls, retries and preparations included. */
  async flush(): Promise<void> {
    for (;;) {
      this.dispatch();
      const busy = [...this.inFlight, ...this.waiting];
      if (busy.length === 0) return;
      await Promise.allSettled(busy);
    }
  }

  /** Entries waiting for a batch call. */
  get size(): number {
    return this.pending.length;
  }

  private enqueue(item: PendingEntry<E>): void {
    let at = this.pending.length;
    while (at > 0 && this.pending[at - 1]!.seq > item.seq) at--;
    this.pending.splice(at, 0, item);
    this.pendingBytes += item.bytes;
    if (this.pending.length >= SQS_MAX_BATCH || this.pendingBytes >= SQS_MAX_BATCH_BYTES) this.dispatch();
    else this.timer ??= setTimeout(() => this.dispatch(), this.options.lingerMs);
  }

  /** Send as many batches as there are free call slots; the rest waits for a slot or for its group. */
  private dispatch(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const maxInFlight = this.options.maxInFlight ?? Number.POSITIVE_INFINITY;
    while (this.pending.length > 0 && this.inFlight.size < maxInFlight) {
      const batch = this.takeBatch();
      if (batch.length === 0) break;
      const call = this.sendBatch(batch).finally(() => {
        this.inFlight.delete(call);
        if (this.pending.length > 0) this.dispatch();
      });
      this.inFlight.add(call);
    }
  }

  /**
   * The oldest entries that fit one call (10 entries, 1 MiB), skipping the groups with an entry out
   * and, once one of a group's entries is left for a later call, that group's later entries too.
   */
  private takeBatch(): PendingEntry<E>[] {
    const batch: PendingEntry<E>[] = [];
    const left: PendingEntry<E>[] = [];
    const leftGroups = new Set<string>();
    let bytes = 0;
    for (const next of this.pending) {
      if (next.ticket.settled) {
        this.pendingBytes -= next.bytes;
        continue;
      }
      const waits = next.group !== undefined && (this.groupsOut.has(next.group) || leftGroups.has(next.group));
      const full = batch.length >= SQS_MAX_BATCH || (batch.length > 0 && bytes + next.bytes > SQS_MAX_BATCH_BYTES);
      if (waits || full) {
        left.push(next);
        if (next.group !== undefined) leftGroups.add(next.group);
        continue;
      }
      this.pendingBytes -= next.bytes;
      bytes += next.bytes;
      batch.push(next);
    }
    this.pending = left;
    for (const item of batch) this.groupOut(item.group, +1);
    return batch;
  }

  private async sendBatch(batch: PendingEntry<E>[]): Promise<void> {
    const deadlines = batch.map((item) => item.deadline).filter((d): d is number => d !== undefined);
    const signal = deadlines.length > 0 ? AbortSignal.timeout(Math.max(1, Math.min(...deadlines) - Date.now())) : undefined;
    for (const item of batch) item.attempt += 1;
    let response: SqsBatchResponse;
    try {
      response = await this.options.send(
        batch.map((item, i) => ({ ...item.entry, Id: String(i) })),
        signal,
      );
    } catch (error) {
      const err = error as Error;
      for (const item of batch) this.retryLater(item, err.name || 'Error', err.message);
      return;
    }
    const answered = new Set<string>();
    for (const ok of response.Successful ?? []) {
      const item = ok.Id === undefined ? undefined : batch[Number(ok.Id)];
      if (!item) continue;
      answered.add(ok.Id!);
      item.ticket.finish(ok.MessageId !== undefined ? { ok: true, messageId: ok.MessageId } : { ok: true });
      this.groupOut(item.group, -1);
    }
    for (const failed of response.Failed ?? []) {
      const item = failed.Id === undefined ? undefined : batch[Number(failed.Id)];
      if (!item) continue;
      answered.add(failed.Id!);
      const code = failed.Code ?? 'Unknown';
      // SenderFault (e.g. ReceiptHandleIsInvalid, InvalidParameterValue) will fail the same way again.
      if (failed.SenderFault === true) {
        item.ticket.finish({ ok: false, code, message: failed.Message ?? '', senderFault: true });
        this.groupOut(item.group, -1);
      } else {
        this.retryLater(item, code, failed.Message ?? '');
      }
    }
    batch.forEach((item, i) => {
      if (!answered.has(String(i))) this.retryLater(item, 'Unanswered', 'Entry missing from the batch response');
    });
  }

  /** Back to its place in the pending list after a backoff; its group stays held until then, or until it is given up. */
  private retryLater(item: PendingEntry<E>, code: string, message: string): void {
    const backoff = Math.round(exponentialBackoff(item.attempt + 1, this.retryDelayMs, this.maxRetryDelayMs));
    const pastDeadline = item.deadline !== undefined && Date.now() + backoff >= item.deadline;
    if (item.ticket.settled || item.attempt >= this.maxAttempts || pastDeadline) {
      item.ticket.finish({ ok: false, code, message });
      this.groupOut(item.group, -1);
      this.kick();
      return;
    }
    const wait = new Promise<void>((resolve) => setTimeout(resolve, backoff)).then(() => {
      this.waiting.delete(wait);
      this.groupOut(item.group, -1);
      if (!item.ticket.settled) this.enqueue(item);
      else this.kick();
    });
    this.waiting.add(wait);
  }

  private groupOut(group: string | undefined, delta: 1 | -1): void {
    if (group === undefined) return;
    const count = (this.groupsOut.get(group) ?? 0) + delta;
    if (count > 0) this.groupsOut.set(group, count);
    else this.groupsOut.delete(group);
  }

  /** A group was released: entries that waited for it may go after the linger. */
  private kick(): void {
    if (this.pending.length > 0) this.timer ??= setTimeout(() => this.dispatch(), this.options.lingerMs);
  }
}
