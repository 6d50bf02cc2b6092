import { createHash } from 'node:crypto';
import { SendMessageBatchCommand, type MessageAttributeValue, type SQSClient } from '@aws-sdk/client-sqs';
import { Counter, Histogram, type Registry } from 'prom-client';
import { RetryableError, type RetryableReason } from '../errors';
import type { Logger } from '../observability/logger';
import { exponentialBackoff } from '../resilience/backoff';
import { withDeadline } from '../resilience/deadline';
import type { ClaimCheckWriter } from '../queue/claim-check-writer';
import { isFifoQueueUrl, UNKNOWN_GROUP } from '../queue/fifo';
import { DuplicateWindow } from './duplicate-window';

/** What the ingress hands to the queue: the POST body byte for byte, and its attributes. */
export interface Payload {
  body: Buffer;
  attributes: Record<string, string>;
  /** The conversation (src/meta/conversation.ts): its MessageGroupId on a FIFO queue, unused on a standard one. */
  groupId?: string;
}

export interface PayloadQueue {
  /** Resolves only once SQS has accepted this payload; rejects with a RetryableError otherwise. */
  enqueue(payload: Payload): Promise<void>;
  /** Send whatever is waiting for the batch window now. */
  flush(): Promise<void>;
}

/** SQS's limits: 10 entries and 1 MiB per SendMessageBatch; 1 MiB per message. */
const MAX_BATCH_ENTRIES = 10;
const MAX_BATCH_BYTES = 1024 * 1024;
/** Characters SQS accepts in a message body (anything else is refused by SendMessage). */
const SQS_REFUSED_CHARS = /[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

interface PendingEntry {
  id: string;
  /** Arrival order: a retried entry goes back to its place, ahead of later ones. */
  seq: number;
  sha256: string;
  /** FIFO only. */
  groupId?: string;
  body: string;
  attributes: Record<string, MessageAttributeValue>;
  bytes: number;
  deadline: number;
  attempts: number;
  settled: boolean;
  resolve(messageId?: string): void;
  reject(error: Error): void;
}

export interface SqsBatchProducerOptions {
  sqs: SQSClient;
  queueUrl: string;
  claimCheck: ClaimCheckWriter;
  /** How long a payload waits for others before its batch goes out. */
  batchWindowMs: number;
  /** Past this, the request answers 503 and Meta retries. */
  timeoutMs: number;
  /** Bodies (with attributes) above this go to S3. */
  claimCheckThresholdBytes: number;
  /**
   * At most this many SendMessageBatch calls at once (default 8); while all are busy, payloads
   * keep accumulating, so batches grow exactly when the process or SQS is slow.
   */
  maxInFlightBatches?: number;
  logger: Logger;
  registry?: Registry;
}

/**
 * Micro-batching producer: payloads arriving within `batchWindowMs` share one SendMessageBatch,
 * each caller waits only for its own entry, and per-entry failures are retried until its deadline.
 * Hand-written because no maintained SQS batching library lets each caller await its own entry.
 * On a FIFO queue (`.fifo` URL) each entry carries its conversation's MessageGroupId and the body's
 * sha256 as MessageDeduplicationId, and a conversation has one batch out at a time (several
 * batches in flight could land in any order; within one batch SQS keeps the entries' order).
 */
export class SqsBatchProducer implements PayloadQueue {
  private pending: PendingEntry[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private sequence = 0;
  private readonly batches: Counter<'outcome'>;
  private readonly batchSize: Histogram;
  private readonly claimChecks: Counter;
  private readonly entryFailures: Counter<'reason'>;
  private readonly fifo: boolean;
  /** FIFO: entries per group in a batch call or waiting for a retry; the group's later entries wait. */
  private readonly groupsOut = new Map<string, number>();
  private readonly duplicates: DuplicateWindow;

  constructor(private readonly options: SqsBatchProducerOptions) {
    const registers = options.registry ? [options.registry] : [];
    this.batches = new Counter({
      name: 'wa_ingress_sqs_send_batches_total',
      help: 'SendMessageBatch calls made by the ingress, by outcome',
      labelNames: ['outcome'],
      registers,
    });
    this.batchSize = new Histogram({
      name: 'wa_ingress_sqs_send_batch_entries',
      help: 'Entries per SendMessageBatch',
      buckets: [1, 2, 3, 5, 8, 10],
      registers,
    });
    this.claimChecks = new Counter({
      name: 'wa_ingress_claim_checks_total',
      help: 'Payloads stored in S3 because they do not fit in an SQS message',
      registers,
    });
    this.entryFailures = new Counter({
      name: 'wa_ingress_sqs_entry_failures_total',
      help: 'SendMessageBatch entries that failed and were retried or given up, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.fifo = isFifoQueueUrl(options.queueUrl);
    this.duplicates = new DuplicateWindow(options.registry);
  }

  async enqueue(payload: Payload): Promise<void> {
    const deadline = Date.now() + this.options.timeoutMs;
    const sha256 = payload.attributes.bodySha256 ?? createHash('sha256').update(payload.body).digest('hex');
    const attributes: Record<string, string> = { ...payload.attributes, bodySha256: sha256 };
    let body = payload.body.toString('utf8');
    const attributeBytes = Object.entries(attributes).reduce((n, [k, v]) => n + k.length + Buffer.byteLength(v) + 6, 0);
    const needsClaimCheck =
      payload.body.length + attributeBytes > this.options.claimCheckThresholdBytes ||
      // A body that is not valid UTF-8 would not survive as an SQS string byte for byte.
      !Buffer.from(body, 'utf8').equals(payload.body) ||
      SQS_REFUSED_CHARS.test(body);
    // Its place is taken on arrival: a claim check's S3 upload must not let later payloads of its conversation overtake it.
    const seq = (this.sequence = (this.sequence + 1) % 1e9);
    const groupId = this.fifo ? (payload.groupId ?? UNKNOWN_GROUP) : undefined;
    if (needsClaimCheck) {
      if (groupId !== undefined) this.groupOut({ groupId }, +1);
      let pointer;
      try {
        pointer = await this.withDeadline(this.options.claimCheck.put(payload.body, sha256), deadline, 's3_claim_check');
      } finally {
        // Released synchronously right before the entry joins the pending list (or on failure).
        if (groupId !== undefined) {
          this.groupOut({ groupId }, -1);
          this.kick();
        }
      }
      this.claimChecks.inc();
      body = JSON.stringify(pointer);
      attributes.claimCheck = `s3://${pointer.claimCheck.bucket}/${pointer.claimCheck.key}`;
    }
    const messageAttributes: Record<string, MessageAttributeValue> = {};
    for (const [name, value] of Object.entries(attributes)) messageAttributes[name] = { DataType: 'String', StringValue: value };
    const bytes = Buffer.byteLength(body) + attributeBytes + (needsClaimCheck ? 64 : 0);

    return new Promise<void>((resolve, reject) => {
      const entry: PendingEntry = {
        id: `m${seq}`,
        seq,
        sha256,
        ...(groupId !== undefined ? { groupId } : {}),
        body,
        attributes: messageAttributes,
        bytes,
        deadline,
        attempts: 0,
        settled: false,
        resolve: (messageId) => {
          if (entry.settled) return;
          entry.settled = true;
          clearTimeout(timer);
          if (this.fifo && messageId) this.duplicates.accepted(sha256, messageId);
          resolve();
        },
        reject: (error) => {
          if (entry.settled) return;
          entry.settled = true;
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(
        () => entry.reject(new RetryableError('sqs_timeout', `SQS did not accept the payload within ${this.options.timeoutMs} ms`)),
        Math.max(0, deadline - Date.now()),
      );
      this.add(entry);
    });
  }

  async flush(): Promise<void> {
    this.sendPending();
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private add(entry: PendingEntry): void {
    // In arrival order: a retried entry goes ahead of what arrived after it (its conversation's later payloads).
    let at = this.pending.length;
    while (at > 0 && this.pending[at - 1]!.seq > entry.seq) at--;
    this.pending.splice(at, 0, entry);
    this.pendingBytes += entry.bytes;
    if (this.pending.length >= MAX_BATCH_ENTRIES || this.pendingBytes >= MAX_BATCH_BYTES) this.sendPending();
    else if (!this.timer) this.timer = setTimeout(() => this.sendPending(), this.options.batchWindowMs);
  }

  /** Send as many full-or-partial batches as there are free call slots; the rest waits for a slot. */
  private sendPending(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const maxInFlight = this.options.maxInFlightBatches ?? 8;
    while (this.pending.length > 0 && this.inFlight.size < maxInFlight) {
      const batch = this.takeBatch();
      if (batch.length === 0) break; // what is left waits for its conversation's batch in flight
      const sending = this.send(batch).finally(() => {
        this.inFlight.delete(sending);
        if (this.pending.length > 0) this.sendPending();
      });
      this.inFlight.add(sending);
    }
  }

  /**
   * The oldest pending entries that fit SQS's batch limits (10 entries, 1 MiB), skipping (on FIFO)
   * the conversations that have an entry out: they follow once it is answered.
   */
  private takeBatch(): PendingEntry[] {
    const batch: PendingEntry[] = [];
    const left: PendingEntry[] = [];
    let bytes = 0;
    for (const next of this.pending) {
      if (next.settled) {
        this.pendingBytes -= next.bytes;
        continue;
      }
      const waits = next.groupId !== undefined && this.groupsOut.has(next.groupId);
      const full = batch.length >= MAX_BATCH_ENTRIES || (batch.length > 0 && bytes + next.bytes > MAX_BATCH_BYTES);
      if (waits || full) {
        left.push(next);
        continue;
      }
      this.pendingBytes -= next.bytes;
      batch.push(next);
      bytes += next.bytes;
    }
    this.pending = left;
    for (const entry of batch) this.groupOut(entry, +1);
    return batch;
  }

  private groupOut(entry: Pick<PendingEntry, 'groupId'>, delta: 1 | -1): void {
    if (entry.groupId === undefined) return;
    const count = (this.groupsOut.get(entry.groupId) ?? 0) + delta;
    if (count > 0) this.groupsOut.set(entry.groupId, count);
    else this.groupsOut.delete(entry.groupId);
  }

  private async send(batch: PendingEntry[]): Promise<void> {
    const remaining = Math.max(1, Math.min(...batch.map((e) => e.deadline)) - Date.now());
    this.batchSize.observe(batch.length);
    for (const entry of batch) entry.attempts++;
    try {
      const out = await this.options.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: this.options.queueUrl,
          Entries: batch.map((e) => ({
            Id: e.id,
            MessageBody: e.body,
            MessageAttributes: e.attributes,
            ...(e.groupId !== undefined ? { MessageGroupId: e.groupId, MessageDeduplicationId: e.sha256 } : {}),
          })),
        }),
        { abortSignal: AbortSignal.timeout(remaining) },
      );
      this.batches.inc({ outcome: 'ok' });
      const byId = new Map(batch.map((e) => [e.id, e]));
      const answered = new Set([...(out.Successful ?? []), ...(out.Failed ?? [])].map((r) => r.Id));
      for (const ok of out.Successful ?? []) {
        const entry = byId.get(ok.Id!);
        entry?.resolve(ok.MessageId);
        if (entry) this.groupOut(entry, -1);
      }
      // A 200 can still carry failed entries: retry those that are not our fault.
      for (const failed of out.Failed ?? []) {
        const entry = byId.get(failed.Id!);
        if (!entry) continue;
        this.entryFailures.inc({ reason: failed.Code ?? 'unknown' });
        if (failed.SenderFault) {
          this.options.logger.error({ code: failed.Code, attempts: entry.attempts }, 'SQS refused a payload entry');
          entry.reject(new RetryableError('sqs_entry_refused', `SQS refused the payload: ${failed.Code}`));
          this.groupOut(entry, -1);
        } else {
          this.retryLater(entry);
        }
      }
      for (const entry of batch) if (!answered.has(entry.id)) this.retryLater(entry);
    } catch (error) {
      this.batches.inc({ outcome: 'error' });
      this.options.logger.warn({ err: error, entries: batch.length }, 'SendMessageBatch failed; retrying until the deadline');
      for (const entry of batch) this.retryLater(entry);
    }
  }

  /** Its conversation stays held (FIFO) until the entry is back in the pending list, or given up. */
  private retryLater(entry: PendingEntry): void {
    const backoff = Math.round(exponentialBackoff(entry.attempts + 1, 25, 500));
    if (entry.settled || Date.now() + backoff >= entry.deadline) {
      this.groupOut(entry, -1); // its timer answers 503
      this.kick();
      return;
    }
    setTimeout(() => {
      this.groupOut(entry, -1);
      if (!entry.settled) this.add(entry);
      else this.kick();
    }, backoff).unref();
  }

  /** A conversation was released: entries that waited for it may go now. */
  private kick(): void {
    if (this.pending.length > 0 && !this.timer) this.timer = setTimeout(() => this.sendPending(), this.options.batchWindowMs);
  }

  private async withDeadline<T>(work: Promise<T>, deadline: number, reason: RetryableReason): Promise<T> {
    try {
      return await withDeadline(work, deadline - Date.now(), () => {
        throw new RetryableError(reason, `${reason} did not finish in time`);
      });
    } catch (error) {
      if (error instanceof RetryableError) throw error;
      throw new RetryableError(reason, `${reason} failed`, { cause: error });
    }
  }
}
