import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Registry } from 'prom-client';
import { RetryableError, type RetryableReason } from '../errors';
import type { InboundRoute } from '../meta/conversation';
import type { Logger } from '../observability/logger';
import { withDeadline } from '../resilience/deadline';
import type { ClaimCheckWriter } from '../queue/claim-check-writer';
import { isFifoQueueUrl, UNKNOWN_GROUP } from '../queue/fifo';
import { DEADLINE_PASSED, ENTRY_NOT_PREPARED, SqsBatcher, type BatchEntryResult, type SqsBatchResponse } from '../queue/sqs-batcher';
import { DuplicateWindow } from './duplicate-window';
import { ProducerMetrics } from './producer-metrics';
import { preparePayload, queuedMessage, sendBatchEntry, type CarriedBody, type Payload, type QueuedMessage } from './queued-payload';

export type { Payload } from './queued-payload';

export interface PayloadQueue {
  /** Resolves only once SQS has accepted this payload; rejects with a RetryableError otherwise. */
  enqueue(payload: Payload): Promise<void>;
  /** Send whatever is waiting for the batch window now. */
  flush(): Promise<void>;
}

export interface SqsBatchProducerOptions {
  /** Bounds each call itself (a request timeout, as createProducerSqsClient's): no call is given per-call options. */
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
 * The ingress's queue: each payload becomes one SQS message (two for a FIFO payload split by lane,
 * see inboundRoutes), its body in S3 when it does not fit (claim check), sent through the process's
 * SqsBatcher. A payload resolves once SQS accepted every message of it, retried per entry until its
 * deadline; the caller answers Meta 200 only then. On a FIFO queue (`.fifo` URL) each message
 * carries its route's MessageGroupId and a deduplication id from the body's sha256, and the batcher
 * keeps a group's messages in arrival order (a claim check holds its place while its body uploads).
 */
export class SqsBatchProducer implements PayloadQueue {
  private readonly batcher: SqsBatcher<QueuedMessage>;
  private readonly metrics: ProducerMetrics;
  private readonly fifo: boolean;
  private readonly duplicates: DuplicateWindow;

  constructor(private readonly options: SqsBatchProducerOptions) {
    this.metrics = new ProducerMetrics(options.registry);
    this.fifo = isFifoQueueUrl(options.queueUrl);
    this.duplicates = new DuplicateWindow(options.registry);
    this.batcher = new SqsBatcher<QueuedMessage>({
      send: (entries) => this.sendBatch(entries),
      lingerMs: options.batchWindowMs,
      // Retried until the payload's deadline, not a number of attempts: Meta waits for our answer.
      maxAttempts: Number.POSITIVE_INFINITY,
      retryDelayMs: 25,
      maxRetryDelayMs: 500,
      sizeOf: (message) => message.bytes,
      maxInFlight: options.maxInFlightBatches ?? 8,
    });
  }

  async enqueue(payload: Payload): Promise<void> {
    const deadline = Date.now() + this.options.timeoutMs;
    const prepared = preparePayload(payload, this.options.claimCheckThresholdBytes);
    const carried: CarriedBody | Promise<CarriedBody> =
      prepared.inlineBody !== undefined ? { body: prepared.inlineBody } : this.claimCheck(payload.body, prepared.sha256, deadline);
    const routes: (InboundRoute | undefined)[] = this.fifo ? (payload.routes?.length ? payload.routes : [{ groupId: UNKNOWN_GROUP }]) : [undefined];
    const results = await Promise.all(
      routes.map((route) => {
        const message = carried instanceof Promise ? carried.then((c) => queuedMessage(prepared, c, route)) : queuedMessage(prepared, carried, route);
        return this.batcher.add(message, { group: route?.groupId, deadline });
      }),
    );
    // A failed claim check rejects with its own reason.
    if (carried instanceof Promise && results.some((r) => !r.ok && r.code === ENTRY_NOT_PREPARED)) await carried;
    const refused = results.find((r) => !r.ok);
    if (refused) throw payloadError(refused, this.options.timeoutMs);
    if (this.fifo) {
      results.forEach((result, i) => {
        if (result.ok && result.messageId) this.duplicates.accepted(`${routes[i]!.groupId}/${prepared.sha256}`, result.messageId);
      });
    }
  }

  async flush(): Promise<void> {
    await this.batcher.flush();
  }

  private async claimCheck(body: Buffer, sha256: string, deadline: number): Promise<CarriedBody> {
    const pointer = await this.withinDeadline(this.options.claimCheck.put(body, sha256), deadline, 's3_claim_check');
    this.metrics.claimChecks.inc();
    return { body: JSON.stringify(pointer), pointer };
  }

  private async sendBatch(entries: (QueuedMessage & { Id: string })[]): Promise<SqsBatchResponse> {
    this.metrics.batchSize.observe(entries.length);
    let out: SqsBatchResponse;
    try {
      // No per-call abortSignal (it would reset a cacheMiddleware client's cache): the client's request
      // timeout ends a stuck call, and each payload's own deadline answers the request 503 regardless.
      out = await this.options.sqs.send(new SendMessageBatchCommand({ QueueUrl: this.options.queueUrl, Entries: entries.map(sendBatchEntry) }));
    } catch (error) {
      this.metrics.batches.inc({ outcome: 'error' });
      this.options.logger.warn({ err: error, entries: entries.length }, 'SendMessageBatch failed; retrying until the deadline');
      throw error;
    }
    this.metrics.batches.inc({ outcome: 'ok' });
    // A 200 can still carry failed entries: the batcher retries those that are not our fault.
    for (const failed of out.Failed ?? []) {
      this.metrics.entryFailures.inc({ reason: failed.Code ?? 'unknown' });
      if (failed.SenderFault) this.options.logger.error({ code: failed.Code }, 'SQS refused a payload entry');
    }
    return out;
  }

  private async withinDeadline<T>(work: Promise<T>, deadline: number, reason: RetryableReason): Promise<T> {
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

/** Why a payload was not made durable, as the failure the ingress answers 503 for. */
function payloadError(result: Extract<BatchEntryResult, { ok: false }>, timeoutMs: number): RetryableError {
  if (result.senderFault) return new RetryableError('sqs_entry_refused', `SQS refused the payload: ${result.code}`);
  const detail = result.code === DEADLINE_PASSED ? '' : ` (last: ${result.code})`;
  return new RetryableError('sqs_timeout', `SQS did not accept the payload within ${timeoutMs} ms${detail}`);
}
