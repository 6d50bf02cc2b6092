import { ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import { GatewayError, PermanentError, RetryableError } from '../errors';
import type { Logger } from '../observability/logger';
import type { Registry } from '../observability/metrics';
import { exponentialBackoff } from '../resilience/backoff';
import { within } from '../resilience/deadline';
import type { ClaimCheckReader } from './claim-check-reader';
import type { DlqParker } from './dlq';
import { INGRESS_ATTRIBUTES, parseIngressAttributes, type ReceivedMessage } from './message';
import { PollerMetrics, type HandlerOutcomeLabel, type RetryCause } from './poller-metrics';
import { ReceiveScheduler } from './receive-scheduler';
import { SQS_MAX_BATCH } from './sqs-batcher';
import { VisibilityKeeper, type HeldMessage } from './visibility-keeper';

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

/**
 * Default retry schedule: steps of 10 s doubling to a 1,000 s cap, equal jitter. With the queue's
 * maxReceiveCount of 20 a message keeps retrying for 7,135–14,270 s (about 2–4 hours) before
 * SQS moves it to the DLQ.
 */
export const DEFAULT_RETRY_POLICY = { baseSeconds: 10, maxSeconds: 1000 } as const;

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
  /** Bound on stop(): handlers finish, or are aborted and handed back, within it (SHUTDOWN_TIMEOUT_MS). */
  shutdownTimeoutMs?: number;
  /** True: receive nothing new (e.g. Bird's circuit breaker is open). In-flight messages carry on. */
  shouldPause?: () => boolean;
  /** Resolves claim-check pointers; without it a pointer message is retried (and ends in the DLQ). */
  claimChecks?: ClaimCheckReader;
  /** Parks a message whose claim check can never resolve (missing, sha256 mismatch, foreign bucket, invalid), with its reason. */
  parker?: Pick<DlqParker, 'park'>;
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

type Settings = Required<Omit<SqsPollerOptions, 'claimChecks' | 'parker'>> & Pick<SqsPollerOptions, 'claimChecks' | 'parker'>;

/** Defaults applied and every option checked at construction, so a bad value fails at start, not on the first message. */
function settingsOf(options: SqsPollerOptions): Settings {
  const concurrency = options.concurrency ?? 32;
  const visibilityTimeoutSeconds = options.visibilityTimeoutSeconds ?? 30;
  const settings: Settings = {
    concurrency,
    waitTimeSeconds: 20,
    visibilityTimeoutSeconds,
    shutdownTimeoutMs: 10_000,
    shouldPause: () => false,
    // One receive returns at most 10 messages and takes a round trip; with several loops the
    // slots freed while one receive is out are refilled by another instead of waiting for it.
    receiveLoops: Math.min(4, Math.ceil(concurrency / SQS_MAX_BATCH)),
    retryBaseSeconds: DEFAULT_RETRY_POLICY.baseSeconds,
    retryMaxSeconds: DEFAULT_RETRY_POLICY.maxSeconds,
    deleteLingerMs: 50,
    receiveGatherMs: 50,
    pauseCheckMs: 1000,
    heartbeatIntervalMs: (visibilityTimeoutSeconds * 1000) / 3,
    metricsPrefix: 'wa_ingress_worker',
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
  } as Settings;
  const problems: string[] = [];
  const check = (ok: boolean, problem: string) => ok || problems.push(problem);
  const s = settings;
  check(Number.isInteger(s.concurrency) && s.concurrency >= 1, `concurrency must be an integer >= 1 (got ${s.concurrency})`);
  check(Number.isInteger(s.waitTimeSeconds) && s.waitTimeSeconds >= 0 && s.waitTimeSeconds <= 20, `waitTimeSeconds must be 0..20 (got ${s.waitTimeSeconds})`);
  check(
    Number.isInteger(s.visibilityTimeoutSeconds) && s.visibilityTimeoutSeconds >= 1 && s.visibilityTimeoutSeconds <= MAX_VISIBILITY_SECONDS,
    `visibilityTimeoutSeconds must be an integer 1..${MAX_VISIBILITY_SECONDS} (got ${s.visibilityTimeoutSeconds})`,
  );
  check(s.heartbeatIntervalMs > 0 && s.heartbeatIntervalMs < s.visibilityTimeoutSeconds * 1000, `heartbeatIntervalMs must be below the visibility timeout (got ${s.heartbeatIntervalMs})`);
  check(s.receiveGatherMs >= 0, `receiveGatherMs must be >= 0 (got ${s.receiveGatherMs})`);
  check(Number.isInteger(s.receiveLoops) && s.receiveLoops >= 1, `receiveLoops must be an integer >= 1 (got ${s.receiveLoops})`);
  check(s.shutdownTimeoutMs > 0, `shutdownTimeoutMs must be positive (got ${s.shutdownTimeoutMs})`);
  check(s.retryBaseSeconds > 0 && s.retryMaxSeconds >= s.retryBaseSeconds, `retry backoff must have 0 < base <= max (got ${s.retryBaseSeconds}, ${s.retryMaxSeconds})`);
  if (problems.length > 0) throw new Error(`SqsPoller: ${problems.join('; ')}`);
  return settings;
}

/**
 * Long-polling SQS consumer with bounded concurrency: each message handled on its own as soon as it
 * arrives, visibility renewed while its handler runs, settled by delete or a growing retry delay.
 * Three parts: the ReceiveScheduler (when and how many to receive), the VisibilityKeeper
 * (heartbeat, delete, retry, hand back) and PollerMetrics; this class handles one message.
 * Not sqs-consumer: one instance awaits a whole receive batch before receiving again, so one slow message holds up the rest.
 */
export class SqsPoller {
  private readonly settings: Settings;
  private readonly logger: Logger;
  private readonly metrics: PollerMetrics;
  private readonly scheduler: ReceiveScheduler;
  private readonly keeper: VisibilityKeeper;
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  /** Aborted at the shutdown bound: handlers still running release their claims and their messages are handed back. */
  private readonly handlers = new AbortController();
  private readonly tasks = new Set<Promise<void>>();
  private stopping: Promise<void> | undefined;

  constructor(options: SqsPollerOptions) {
    this.settings = settingsOf(options);
    const s = this.settings;
    this.logger = s.logger.child({ component: 'sqs-poller' });
    this.metrics = new PollerMetrics(s.registry, s.metricsPrefix);
    this.keeper = new VisibilityKeeper({
      sqs: s.sqs,
      queueUrl: s.queueUrl,
      visibilityTimeoutSeconds: s.visibilityTimeoutSeconds,
      heartbeatIntervalMs: s.heartbeatIntervalMs,
      deleteLingerMs: s.deleteLingerMs,
      metrics: this.metrics,
      logger: this.logger,
    });
    this.scheduler = new ReceiveScheduler({
      receive: (max, signal) => this.receive(max, signal),
      dispatch: (message) => this.begin(message),
      handBack: (messages) => this.handBackReceived(messages),
      concurrency: s.concurrency,
      receiveLoops: s.receiveLoops,
      receiveGatherMs: s.receiveGatherMs,
      pauseCheckMs: s.pauseCheckMs,
      shouldPause: s.shouldPause,
      metrics: this.metrics,
      logger: this.logger,
    });
  }

  get inFlightCount(): number {
    return this.keeper.size;
  }

  start(): void {
    if (this.state !== 'new') throw new Error(`SqsPoller cannot start: it is ${this.state}`);
    this.state = 'running';
    this.keeper.start();
    this.scheduler.start();
    const { queueUrl, concurrency, receiveLoops, visibilityTimeoutSeconds } = this.settings;
    this.logger.info({ queueUrl, concurrency, receiveLoops, visibilityTimeoutSeconds }, 'SQS poller started');
  }

  /**
   * Stop within shutdownTimeoutMs and leave nothing hidden: no new receives; receives already out
   * return and what they bring is handed back (visibility 0); in-flight handlers may finish until
   * the bound, then their signal aborts (they release their claims) and their messages are handed
   * back too. The tail of the budget flushes deletes and visibility changes.
   */
  stop(): Promise<void> {
    this.stopping ??= this.drain();
    return this.stopping;
  }

  private async drain(): Promise<void> {
    const { shutdownTimeoutMs } = this.settings;
    const deadline = Date.now() + shutdownTimeoutMs;
    this.state = 'stopping';
    // Kept for the hand-back and the flush: finished work must not be delivered again.
    const reserveMs = Math.min(2000, Math.floor(shutdownTimeoutMs / 4));
    const workBudget = () => deadline - reserveMs - Date.now();
    const receivesEnded = this.scheduler.stop(workBudget());
    const finished = await within(Promise.all([receivesEnded, Promise.allSettled([...this.tasks])]), workBudget());
    if (!finished) {
      const left = this.keeper.unsettled();
      this.logger.warn({ inFlight: left.length }, 'Shutdown bound: aborting unfinished handlers and handing their messages back');
      this.handlers.abort();
      // A moment for the handlers to release their claims before their messages become visible.
      await within(Promise.allSettled([...this.tasks]), Math.min(1000, reserveMs / 2));
      const unsettled = this.keeper.unsettled();
      const handed = await within(this.keeper.handBackHeld(unsettled, this.logger), Math.max(0, deadline - Date.now()));
      if (handed) this.metrics.handedBack.inc({ when: 'in_flight' }, unsettled.length);
    }
    this.keeper.stopHeartbeat();
    await receivesEnded;
    const flushed = await within(this.keeper.flush(), Math.max(0, deadline - Date.now()));
    if (!flushed) this.logger.warn('Shutdown: pending deletes did not flush in time; those messages will be delivered again');
    this.metrics.paused.set(0);
    this.state = 'stopped';
    this.logger.info('SQS poller stopped');
  }

  private async receive(maxMessages: number, abortSignal: AbortSignal): Promise<Message[]> {
    const { sqs, queueUrl, waitTimeSeconds, visibilityTimeoutSeconds } = this.settings;
    const out = await this.metrics.call('ReceiveMessage', () =>
      sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: maxMessages,
          WaitTimeSeconds: waitTimeSeconds,
          VisibilityTimeout: visibilityTimeoutSeconds,
          MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
          // The deprecated name as well (typed as queue attributes, hence All): local-aws-sqs reads only this one.
          AttributeNames: ['All'],
          MessageAttributeNames: ['All'],
        }),
        { abortSignal },
      ),
    );
    return out.Messages ?? [];
  }

  /** A receive returned after stop began: its messages go back at once instead of staying hidden. */
  private handBackReceived(messages: Message[]): void {
    const handles = messages.map((m) => m.ReceiptHandle).filter((h): h is string => h !== undefined);
    this.metrics.received.inc(handles.length);
    void this.keeper.handBack(handles, this.logger).then((n) => {
      this.metrics.handedBack.inc({ when: 'received' }, n);
      this.logger.info({ messages: n }, 'Shutdown: handed back messages a receive returned after stop');
    });
  }

  /** Start handling a received message; false when it took no slot (already in hand). */
  private begin(message: Message): boolean {
    const { MessageId: messageId, ReceiptHandle: receiptHandle } = message;
    if (!messageId || !receiptHandle) return false;
    this.metrics.received.inc();
    const held = this.keeper.hold(messageId, receiptHandle);
    if (!held) {
      this.logger.warn({ messageId }, 'Message delivered again while still being handled; keeping the newer receipt handle');
      return false;
    }
    this.metrics.inFlight.set(this.keeper.size);
    const task = this.handle(message, held)
      .catch((error) => this.logger.error({ err: error, messageId }, 'Unexpected error settling a message'))
      .finally(() => {
        this.keeper.release(held);
        this.tasks.delete(task);
        this.metrics.inFlight.set(this.keeper.size);
        this.scheduler.slotFreed();
      });
    this.tasks.add(task);
    return true;
  }

  private async handle(message: Message, held: HeldMessage): Promise<void> {
    const receiveCount = Number(message.Attributes?.ApproximateReceiveCount ?? '1') || 1;
    const log = this.logger.child({
      messageId: held.messageId,
      receiveCount,
      requestId: message.MessageAttributes?.[INGRESS_ATTRIBUTES.requestId]?.StringValue,
    });

    let received: ReceivedMessage;
    try {
      received = await this.toReceivedMessage(message, receiveCount);
    } catch (error) {
      return this.unresolvable(message, held, error, receiveCount, log);
    }

    const endTimer = this.metrics.handlerSeconds.startTimer();
    let outcome: HandlerOutcome;
    let label: HandlerOutcomeLabel;
    try {
      outcome = await this.settings.handler(received, { signal: this.handlers.signal });
      label = outcome.action;
    } catch (error) {
      const retryAfterMs = error instanceof RetryableError ? error.retryAfterMs : undefined;
      outcome = { action: 'retry', reason: reasonOf(error), ...(retryAfterMs !== undefined ? { delaySeconds: Math.ceil(retryAfterMs / 1000) } : {}) };
      label = 'error';
      if (!this.handlers.signal.aborted) log.warn({ err: error, reason: outcome.reason }, 'Handler failed; the message will be retried');
    }
    if (this.handlers.signal.aborted && outcome.action === 'retry') label = 'aborted';
    endTimer({ outcome: label });
    return this.settle(held, outcome, receiveCount, label === 'error' ? 'error' : 'handler', log);
  }

  /**
   * The claim check could not be read. A pointer that can never resolve (PermentError: missing
   * object, sha256 mismatch, foreign bucket, invalid pointer) is parked at once with its reason;
   * anything else (S3 unavailable) is retried.
   */
  private async unresolvable(message: Message, held: HeldMessage, error: unknown, receiveCount: number, log: Logger): Promise<void> {
    const reason = reasonOf(error);
    if (error instanceof PermanentError && this.settings.parker) {
      try {
        await this.settings.parker.park({ body: message.Body ?? '', attributes: message.MessageAttributes ?? {}, reason: error.reason });
        log.error({ reason, event: 'message_parked', detail: error.message }, 'Claim check can never resolve; message parked in the DLQ');
        return this.keeper.delete(held, log);
      } catch (parkError) {
        log.error({ err: parkError, reason }, 'Could not park the unresolvable claim check; the message will be retried');
      }
    } else {
      log.error({ err: error, reason }, 'Could not resolve the claim check; not handing the message to the handler');
    }
    return this.settle(held, { action: 'retry', reason }, receiveCount, 'claim_check', log);
  }

  private async toReceivedMessage(message: Message, receiveCount: number): Promise<ReceivedMessage> {
    const sqsBody = message.Body ?? '';
    const messageAttributes = message.MessageAttributes ?? {};
    const attributes = parseIngressAttributes(messageAttributes);
    let body: Buffer;
    if (attributes.claimCheck !== undefined) {
      if (!this.settings.claimChecks) throw new RetryableError('claim_check_unconfigured', 'Claim-check message but the poller has no ClaimCheckReader');
      body = await this.settings.claimChecks.resolve(attributes.claimCheck, sqsBody);
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

  private async settle(held: HeldMessage, outcome: HandlerOutcome, receiveCount: number, cause: RetryCause, log: Logger): Promise<void> {
    if (outcome.action === 'delete') {
      // Also after a hand-back: the work is done, and the receipt handle still deletes unless another worker took the message.
      return this.keeper.delete(held, log);
    }
    if (held.settled) {
      log.info({ reason: outcome.reason }, 'Handler ended after its message was handed back');
      return;
    }
    if (this.handlers.signal.aborted) {
      // Shutdown cut the handler short: nothing failed, so the message goes back at once, not after a backoff.
      await this.keeper.handBackHeld([held], log);
      this.metrics.handedBack.inc({ when: 'in_flight' });
      return;
    }
    const delaySeconds = retryDelaySeconds(outcome, receiveCount, { baseSeconds: this.settings.retryBaseSeconds, maxSeconds: this.settings.retryMaxSeconds });
    this.metrics.retried.inc({ cause });
    log.info({ delaySeconds, reason: outcome.reason }, 'Message left for a retry');
    await this.keeper.retryAfter(held, delaySeconds, log);
  }
}

function reasonOf(error: unknown): string {
  if (error instanceof GatewayError) return error.reason;
  return error instanceof Error ? error.name : 'unknown';
}
