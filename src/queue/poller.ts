import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { GatewayError, RetryableError } from '../errors';
import type { Logger } from '../observability/logger';
import { Counter, Gauge, Histogram, type Registry } from '../observability/metrics';
import type { ClaimCheckReader } from './claim-check-reader';
import { INGRESS_ATTRIBUTES, parseIngressAttributes, type ReceivedMessage } from './message';
import { SqsBatcher, SQS_MAX_BATCH, type BatchEntryResult } from './sqs-batcher';
import { sqsCallsCounter } from './sqs-calls';

/**
 * `delete`: every event is COMPLETED or parked. `retry`: leave it to come back after a delay that
 * grows with the receive count; `delaySeconds` only lengthens it (e.g. Bird's Retry-After).
 */
export type HandlerOutcome = { action: 'delete' } | { action: 'retry'; delaySeconds?: number; reason?: string };
/** `signal` aborts on shutdown: the handler then releases its claims and answers retry, so the message is handed back. */
export interface HandlerContext {
  signal?: AbortSignal;
}
export type MessageHandler = (message: ReceivedMessage, context?: HandlerContext) => Promise<HandlerOutcome>;

/** SQS's ceiling for a visibility timeout (and so for a retry delay). */
export const MAX_VISIBILITY_SECONDS = 43_200;

export interface SqsPollerOptions {
  sqs: SQSClient;
  queueUrl: string;
  handler: MessageHandler;
  logger: Logger;
  registry: Registry;
  /** Messages in flight per process (WORKER_CONCURRENCY). */
  concurrency?: number;
  /** Long-poll wait (SQS_WAIT_TIME_SECONDS). */
  waitTimeSeconds?: number;
  /** Asked for on every receive and renewed by the heartbeat (SQS_VISIBILITY_TIMEOUT_SECONDS). */
  visibilityTimeoutSeconds?: number;
  /** How long stop() lets in-flight handlers finish (SHUTDOWN_TIMEOUT_MS). */
  shutdownTimeoutMs?: number;
  /** True: receive nothing new (e.g. Bird's circuit breaker is open). In-flight messages carry on. */
  shouldPause?: () => boolean;
  /** Resolves claim-check pointers; without it a pointer message is retried (and ends in the DLQ). */
  claimChecks?: ClaimCheckReader;
  /** Parallel receive loops; default ceil(concurrency / 10), at most 4. */
  receiveLoops?: number;
  /** Retry backoff: min(base * 2^(receiveCount-1), max) with equal jitter; a handler's delay can only lengthen it. */
  retryBaseSeconds?: number;
  retryMaxSeconds?: number;
  /** How long a delete waits for others to share its DeleteMessageBatch call. */
  deleteLingerMs?: number;
  /**
   * With fewer than 10 free slots (and some in flight), wait up to this long for more to free up,
   * so receives ask for full batches: fewer SQS calls per event for a few ms of idle slots.
   */
  receiveGatherMs?: number;
  /** How often a paused poller looks at shouldPause() again. */
  pauseCheckMs?: number;
  /** Visibility is renewed at least this often while a handler runs; default a third of the timeout. */
  heartbeatIntervalMs?: number;
  /** Names of this poller's metrics (`<prefix>_messages_received_total`…), so two pollers can share a registry. */
  metricsPrefix?: string;
}

/**
 * Equal-jitter exponential backoff: half of the step fixed, half random, so a burst of failures
 * spreads out without a delay collapsing towards zero. A formula, not a retry loop, so not cockatiel:
 * the wait is handed to SQS as a visibility timeout.
 */
export function exponentialBackoff(attempt: number, base: number, max: number, random: () => number = Math.random): number {
  const step = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  return step / 2 + (random() * step) / 2;
}

/**
 * The visibility timeout a retried message gets: backoff on the receive count, or the handler's
 * delay when that is longer. The handler's delay is a floor, never a replacement: an open Bird
 * breaker asks for its few remaining seconds on every receive, and taking that alone would spend
 * the queue's maxReceiveCount in minutes instead of hours.
 */
export function retryDelaySeconds(
  outcome: { delaySeconds?: number },
  receiveCount: number,
  policy: { baseSeconds: number; maxSeconds: number },
  random: () => number = Math.random,
): number {
  const backoff = Math.max(1, Math.round(exponentialBackoff(receiveCount, policy.baseSeconds, policy.maxSeconds, random)));
  const asked = outcome.delaySeconds !== undefined && Number.isFinite(outcome.delaySeconds) ? Math.round(outcome.delaySeconds) : 0;
  return Math.min(MAX_VISIBILITY_SECONDS, Math.max(backoff, asked));
}

/**
 * Default retry schedule: steps of 10 s doubling to a 1,000 s cap, equal jitter. With the queue's
 * maxReceiveCount of 20 a message keeps retrying for 7,135–14,270 s (about 2–4 hours) before
 * SQS moves it to the DLQ.
 */
export const DEFAULT_RETRY_POLICY = { baseSeconds: 10, maxSeconds: 1000 } as const;

interface InFlightMessage {
  messageId: string;
  /** Replaced when SQS hands this process the same message again: only the latest handle is valid. */
  receiptHandle: string;
  extendedAt: number;
  extending: boolean;
  finished: boolean;
  heartbeat?: Promise<unknown>;
}

type OutcomeLabel = 'delete' | 'retry' | 'error';

/**
 * Long-polling SQS consumer with bounded concurrency: up to `concurrency` messages in flight, each
 * handled on its own, receives topped up whenever slots are free, visibility renewed while a
 * handler runs, deletes and visibility changes batched across messages.
 * Not sqs-consumer: one instance awaits a whole receive batch before receiving again, so one slow message holds up the rest.
 */
export class SqsPoller {
  private readonly sqs: SQSClient;
  private readonly queueUrl: string;
  private readonly handler: MessageHandler;
  private readonly logger: Logger;
  private readonly concurrency: number;
  private readonly waitTimeSeconds: number;
  private readonly visibilityTimeoutSeconds: number;
  private readonly shutdownTimeoutMs: number;
  private readonly shouldPause: () => boolean;
  private readonly claimChecks?: ClaimCheckReader;
  private readonly receiveLoops: number;
  private readonly retryPolicy: { baseSeconds: number; maxSeconds: number };
  private readonly pauseCheckMs: number;
  private readonly heartbeatIntervalMs: number;
  private readonly receiveGatherMs: number;

  private readonly deletes: SqsBatcher<{ ReceiptHandle: string }>;
  private readonly visibility: SqsBatcher<{ ReceiptHandle: string; VisibilityTimeout: number }>;

  private readonly metrics: {
    calls: Counter<'operation'>;
    failures: Counter<'operation'>;
    received: Counter;
    deleted: Counter;
    retried: Counter<'cause'>;
    inFlight: Gauge;
    paused: Gauge;
    handlerSeconds: Histogram<'outcome'>;
  };

  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private readonly abort = new AbortController();
  private readonly inFlight = new Map<string, InFlightMessage>();
  private readonly tasks = new Set<Promise<void>>();
  /** Slots held by handlers, plus slots promised to receive calls still out. */
  private busy = 0;
  private reserved = 0;
  /** Since when the receive loops have been waiting for a full batch of free slots. */
  private gatheringSince: number | undefined;
  private slotWaiters: Array<() => void> = [];
  private loops: Promise<void>[] = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private paused = false;
  /** Set when stop() gave up waiting: late outcomes are dropped and the messages simply come back. */
  private abandoned = false;
  private stopping: Promise<void> | undefined;

  constructor(options: SqsPollerOptions) {
    this.sqs = options.sqs;
    this.queueUrl = options.queueUrl;
    this.handler = options.handler;
    this.logger = options.logger.child({ component: 'sqs-poller' });
    this.concurrency = options.concurrency ?? 32;
    this.waitTimeSeconds = options.waitTimeSeconds ?? 20;
    this.visibilityTimeoutSeconds = options.visibilityTimeoutSeconds ?? 30;
    this.shutdownTimeoutMs = options.shutdownTimeoutMs ?? 10_000;
    this.shouldPause = options.shouldPause ?? (() => false);
    this.claimChecks = options.claimChecks;
    // One receive returns at most 10 messages and takes a round trip; with several loops the
    // slots freed while one receive is out are refilled by another instead of waiting for it.
    this.receiveLoops = options.receiveLoops ?? Math.min(4, Math.ceil(this.concurrency / SQS_MAX_BATCH));
    this.retryPolicy = { baseSeconds: options.retryBaseSeconds ?? DEFAULT_RETRY_POLICY.baseSeconds, maxSeconds: options.retryMaxSeconds ?? DEFAULT_RETRY_POLICY.maxSeconds };
    this.pauseCheckMs = options.pauseCheckMs ?? 1000;
    this.receiveGatherMs = options.receiveGatherMs ?? 50;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? (this.visibilityTimeoutSeconds * 1000) / 3;
    this.validate();

    this.deletes = new SqsBatcher({
      lingerMs: options.deleteLingerMs ?? 50,
      send: (Entries) =>
        this.call('DeleteMessageBatch', () => this.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: this.queueUrl, Entries }))),
    });
    this.visibility = new SqsBatcher({
      lingerMs: 5,
      send: (Entries) =>
        this.call('ChangeMessageVisibilityBatch', () =>
          this.sqs.send(new ChangeMessageVisibilityBatchCommand({ QueueUrl: this.queueUrl, Entries })),
        ),
    });

    const registers = [options.registry];
    const prefix = options.metricsPrefix ?? 'wa_ingress_worker';
    this.metrics = {
      calls: sqsCallsCounter(options.registry),
      failures: new Counter({
        name: `${prefix}_sqs_failures_total`,
        help: 'SQS calls, or batch entries, the worker could not complete (after retries)',
        labelNames: ['operation'],
        registers,
      }),
      received: new Counter({ name: `${prefix}_messages_received_total`, help: 'SQS messages received', registers }),
      deleted: new Counter({ name: `${prefix}_messages_deleted_total`, help: 'SQS messages deleted after handling', registers }),
      retried: new Counter({
        name: `${prefix}_messages_retried_total`,
        help: 'SQS messages left to come back later, by cause (handler: outcome retry; error: handler threw; claim_check: body unresolvable)',
        labelNames: ['cause'],
        registers,
      }),
      inFlight: new Gauge({ name: `${prefix}_messages_in_flight`, help: 'Messages being handled now', registers }),
      paused: new Gauge({ name: `${prefix}_paused`, help: '1 while receiving is paused (shouldPause)', registers }),
      handlerSeconds: new Histogram({
        name: `${prefix}_handler_duration_seconds`,
        help: 'Time the message handler took, by outcome',
        labelNames: ['outcome'],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
        registers,
      }),
    };
  }

  private validate(): void {
    const problems: string[] = [];
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) problems.push(`concurrency must be an integer >= 1 (got ${this.concurrency})`);
    if (!Number.isInteger(this.waitTimeSeconds) || this.waitTimeSeconds < 0 || this.waitTimeSeconds > 20) {
      problems.push(`waitTimeSeconds must be 0..20 (got ${this.waitTimeSeconds})`);
    }
    if (!Number.isInteger(this.visibilityTimeoutSeconds) || this.visibilityTimeoutSeconds < 1 || this.visibilityTimeoutSeconds > MAX_VISIBILITY_SECONDS) {
      problems.push(`visibilityTimeoutSeconds must be an integer 1..${MAX_VISIBILITY_SECONDS} (got ${this.visibilityTimeoutSeconds})`);
    }
    if (!(this.heartbeatIntervalMs > 0 && this.heartbeatIntervalMs < this.visibilityTimeoutSeconds * 1000)) {
      problems.push(`heartbeatIntervalMs must be below the visibility timeout (got ${this.heartbeatIntervalMs})`);
    }
    if (!(this.receiveGatherMs >= 0)) problems.push(`receiveGatherMs must be >= 0 (got ${this.receiveGatherMs})`);
    if (!Number.isInteger(this.receiveLoops) || this.receiveLoops < 1) problems.push(`receiveLoops must be an integer >= 1 (got ${this.receiveLoops})`);
    if (problems.length > 0) throw new Error(`SqsPoller: ${problems.join('; ')}`);
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  start(): void {
    if (this.state !== 'new') throw new Error(`SqsPoller cannot start: it is ${this.state}`);
    this.state = 'running';
    const tick = this.heartbeatIntervalMs / 2;
    this.heartbeatTimer = setInterval(() => this.heartbeat(), tick);
    this.heartbeatTimer.unref();
    for (let i = 0; i < this.receiveLoops; i++) this.loops.push(this.receiveLoop());
    this.logger.info(
      { queueUrl: this.queueUrl, concurrency: this.concurrency, receiveLoops: this.receiveLoops, visibilityTimeoutSeconds: this.visibilityTimeoutSeconds },
      'SQS poller started',
    );
  }

  /**
   * Stop receiving, let in-flight handlers finish within shutdownTimeoutMs, flush pending deletes
   * and visibility changes. Messages still in a handler after that are left: their visibility lapses
   * and SQS delivers them again. A receive cut short by stop() may also have taken messages: they
   * come back the same way.
   */
  stop(): Promise<void> {
    this.stopping ??= this.drain();
    return this.stopping;
  }

  private async drain(): Promise<void> {
    const deadline = Date.now() + this.shutdownTimeoutMs;
    this.state = 'stopping';
    this.abort.abort();
    this.wakeSlotWaiters();
    await Promise.allSettled(this.loops);

    // Keep the tail of the budget for flushing deletes, so finished work is not delivered again.
    const flushReserveMs = Math.min(2000, Math.floor(this.shutdownTimeoutMs / 4));
    const finished = await this.within(Promise.allSettled([...this.tasks]), deadline - flushReserveMs - Date.now());
    if (!finished) {
      this.abandoned = true;
      this.logger.warn({ inFlight: this.inFlight.size }, 'Shutdown timeout: leaving unfinished messages to come back when their visibility lapses');
    }
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    const flushed = await this.within(Promise.all([this.deletes.flush(), this.visibility.flush()]), Math.max(0, deadline - Date.now()));
    if (!flushed) this.logger.warn('Shutdown: pending deletes did not flush in time; those messages will be delivered again');
    this.metrics.paused.set(0);
    this.state = 'stopped';
    this.logger.info('SQS poller stopped');
  }

  private async within(work: Promise<unknown>, ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, ms));
    });
    try {
      return await Promise.race([work.then(() => true as const), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private get running(): boolean {
    return this.state === 'running';
  }

  private async receiveLoop(): Promise<void> {
    let failures = 0;
    while (this.running) {
      try {
        await this.receiveOnce();
        failures = 0;
      } catch (error) {
        this.wakeSlotWaiters(); // the failed receive's reserved slots are free again
        if (!this.running) break;
        failures += 1;
        const backoffMs = Math.round(exponentialBackoff(failures, 200, 10_000));
        this.logger.warn({ err: error, failures, backoffMs }, 'SQS ReceiveMessage failed; backing off');
        await this.idle(backoffMs);
      }
    }
  }

  /** One turn of a receive loop: wait while paused or full, else receive what fits and start each message. */
  private async receiveOnce(): Promise<void> {
    if (this.pauseRequested()) {
      this.setPaused(true);
      return this.idle(this.pauseCheckMs);
    }
    this.setPaused(false);
    const want = Math.min(SQS_MAX_BATCH, this.concurrency - this.busy - this.reserved);
    if (want <= 0) return this.slotFreed();
    if (want < Math.min(SQS_MAX_BATCH, this.concurrency) && this.busy > 0) {
      // One window for all loops: otherwise each would take its share of a few free slots.
      this.gatheringSince ??= Date.now();
      const left = this.receiveGatherMs - (Date.now() - this.gatheringSince);
      if (left > 0) {
        // Cancel the losing sleep, or its timer and abort listener pile up across wake-ups.
        let wake: () => void = () => undefined;
        await Promise.race([this.slotFreed(), this.idle(left, (cancel) => (wake = cancel))]);
        wake();
        return;
      }
    }
    this.gatheringSince = undefined;
    this.reserved += want;
    let messages: Message[];
    try {
      const out = await this.call('ReceiveMessage', () =>
        this.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: this.queueUrl,
            MaxNumberOfMessages: want,
            WaitTimeSeconds: this.waitTimeSeconds,
            VisibilityTimeout: this.visibilityTimeoutSeconds,
            MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
            // The deprecated name as well (typed as queue attributes, hence All): local-aws-sqs reads only this one.
            AttributeNames: ['All'],
            MessageAttributeNames: ['All'],
          }),
          { abortSignal: this.abort.signal },
        ),
      );
      messages = out.Messages ?? [];
    } finally {
      this.reserved -= want;
    }
    for (const message of messages) this.begin(message);
    if (messages.length < want) this.wakeSlotWaiters();
  }

  /** A throwing shouldPause must not stop the loop: it counts as "not paused", and is logged. */
  private pauseRequested(): boolean {
    try {
      return this.shouldPause();
    } catch (error) {
      this.logger.error({ err: error }, 'shouldPause() threw; receiving as if not paused');
      return false;
    }
  }

  private setPaused(paused: boolean): void {
    if (paused === this.paused) return;
    this.paused = paused;
    this.metrics.paused.set(paused ? 1 : 0);
    this.logger.info(paused ? 'Receiving paused (shouldPause)' : 'Receiving resumed');
  }

  /** Sleep that stop() (or the caller, through onCancel) cuts short. */
  // A timer and one removable listener, not AbortSignal.any: on Node 20 every dependent signal stays tied to the long-lived one.
  private idle(ms: number, onCancel?: (cancel: () => void) => void): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.abort.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.abort.signal.addEventListener('abort', done, { once: true });
      onCancel?.(done);
    });
  }

  private slotFreed(): Promise<void> {
    return new Promise((resolve) => this.slotWaiters.push(resolve));
  }

  private wakeSlotWaiters(): void {
    const waiters = this.slotWaiters;
    this.slotWaiters = [];
    for (const wake of waiters) wake();
  }

  private begin(message: Message): void {
    const messageId = message.MessageId;
    const receiptHandle = message.ReceiptHandle;
    if (!messageId || !receiptHandle) return;
    this.metrics.received.inc();
    const current = this.inFlight.get(messageId);
    if (current) {
      // Visibility lapsed (a missed heartbeat) and SQS gave it back to us while still in hand:
      // keep one handler, and the newest receipt handle, which is the only one that deletes.
      current.receiptHandle = receiptHandle;
      current.extendedAt = Date.now();
      this.logger.warn({ messageId }, 'Message delivered again while still being handled; keeping the newer receipt handle');
      return;
    }
    const entry: InFlightMessage = { messageId, receiptHandle, extendedAt: Date.now(), extending: false, finished: false };
    this.inFlight.set(messageId, entry);
    this.busy += 1;
    this.metrics.inFlight.set(this.inFlight.size);
    const task = this.handle(message, entry)
      .catch((error) => this.logger.error({ err: error, messageId }, 'Unexpected error settling a message'))
      .finally(() => {
        this.inFlight.delete(messageId);
        this.tasks.delete(task);
        this.busy -= 1;
        this.metrics.inFlight.set(this.inFlight.size);
        this.wakeSlotWaiters();
      });
    this.tasks.add(task);
  }

  private async handle(message: Message, entry: InFlightMessage): Promise<void> {
    const receiveCount = Number(message.Attributes?.ApproximateReceiveCount ?? '1') || 1;
    const log = this.logger.child({
      messageId: entry.messageId,
      receiveCount,
      requestId: message.MessageAttributes?.[INGRESS_ATTRIBUTES.requestId]?.StringValue,
    });

    let received: ReceivedMessage;
    try {
      received = await this.toReceivedMessage(message, receiveCount);
    } catch (error) {
      log.error({ err: error, reason: reasonOf(error) }, 'Could not resolve the claim check; not handing the message to the handler');
      entry.finished = true;
      return this.settle(entry, { action: 'retry' }, receiveCount, 'claim_check', log);
    }

    const endTimer = this.metrics.handlerSeconds.startTimer();
    let outcome: HandlerOutcome;
    let label: OutcomeLabel;
    try {
      outcome = await this.handler(received);
      label = outcome.action;
    } catch (error) {
      const retryAfterMs = error instanceof RetryableError ? error.retryAfterMs : undefined;
      outcome = { action: 'retry', reason: reasonOf(error), ...(retryAfterMs !== undefined ? { delaySeconds: Math.ceil(retryAfterMs / 1000) } : {}) };
      label = 'error';
      log.warn({ err: error, reason: outcome.reason }, 'Handler failed; the message will be retried');
    }
    endTimer({ outcome: label });
    entry.finished = true;
    return this.settle(entry, outcome, receiveCount, label === 'error' ? 'error' : 'handler', log);
  }

  private async toReceivedMessage(message: Message, receiveCount: number): Promise<ReceivedMessage> {
    const sqsBody = message.Body ?? '';
    const messageAttributes = message.MessageAttributes ?? {};
    const attributes = parseIngressAttributes(messageAttributes);
    let body: Buffer;
    if (attributes.claimCheck !== undefined) {
      if (!this.claimChecks) throw new RetryableError('claim_check_unconfigured', 'Claim-check message but the poller has no ClaimCheckReader');
      body = await this.claimChecks.resolve(attributes.claimCheck, sqsBody);
    } else {
      body = Buffer.from(sqsBody, 'utf8');
    }
    return {
      messageId: message.MessageId ?? '',
      receiveCount,
      body,
      attributes,
      original: { body: sqsBody, attributes: messageAttributes },
    };
  }

  private async settle(
    entry: InFlightMessage,
    outcome: HandlerOutcome,
    receiveCount: number,
    cause: 'handler' | 'error' | 'claim_check',
    log: Logger,
  ): Promise<void> {
    if (this.abandoned) {
      log.warn({ action: outcome.action }, 'Handler finished after the shutdown timeout; the message will be delivered again');
      return;
    }
    if (outcome.action === 'delete') {
      void this.deletes.add({ ReceiptHandle: entry.receiptHandle }).then((result) => {
        if (result.ok) this.metrics.deleted.inc();
        else this.entryFailed('DeleteMessageBatch', result, log, 'Delete failed; the message will be delivered again (dedupe skips its events)');
      });
      return;
    }
    // A heartbeat still on its way could land after the retry delay and overwrite it.
    await entry.heartbeat;
    const delaySeconds = retryDelaySeconds(outcome, receiveCount, this.retryPolicy);
    this.metrics.retried.inc({ cause });
    log.info({ delaySeconds, reason: outcome.reason }, 'Message left for a retry');
    void this.visibility.add({ ReceiptHandle: entry.receiptHandle, VisibilityTimeout: delaySeconds }).then((result) => {
      if (!result.ok) this.entryFailed('ChangeMessageVisibilityBatch', result, log, 'Could not set the retry delay; the message comes back when its visibility lapses');
    });
  }

  private heartbeat(): void {
    const now = Date.now();
    for (const entry of this.inFlight.values()) {
      if (entry.finished || entry.extending || now - entry.extendedAt < this.heartbeatIntervalMs / 2) continue;
      entry.extending = true;
      entry.heartbeat = this.visibility
        .add({ ReceiptHandle: entry.receiptHandle, VisibilityTimeout: this.visibilityTimeoutSeconds })
        .then((result) => {
          entry.extending = false;
          if (result.ok) entry.extendedAt = now;
          else this.entryFailed('ChangeMessageVisibilityBatch', result, this.logger.child({ messageId: entry.messageId }), 'Heartbeat failed; retrying on the next tick');
        });
    }
  }

  private entryFailed(operation: string, result: BatchEntryResult, log: Logger, message: string): void {
    if (result.ok) return;
    this.metrics.failures.inc({ operation });
    log.warn({ operation, code: result.code, detail: result.message }, message);
  }

  /** Every SQS call goes through here, so `wa_ingress_sqs_calls_total` counts what the worker spends. */
  private async call<T extends object>(operation: string, send: () => Promise<T>): Promise<T> {
    this.metrics.calls.inc({ operation });
    try {
      return await send();
    } catch (error) {
      if ((error as Error)?.name !== 'AbortError') this.metrics.failures.inc({ operation });
      throw error;
    }
  }
}

function reasonOf(error: unknown): string {
  if (error instanceof GatewayError) return error.reason;
  return error instanceof Error ? error.name : 'unknown';
}

