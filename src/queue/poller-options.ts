import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Logger } from '../observability/logger';
import type { Registry } from '../observability/metrics';
import type { ClaimCheckReader } from './claim-check-reader';
import type { DlqParker } from './dlq';
import type { ReceivedMessage } from './message';
import { DEFAULT_RETRY_POLICY, MAX_VISIBILITY_SECONDS } from './retry-schedule';
import { SQS_MAX_BATCH } from './sqs-batcher';

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
  /**
   * The gather window at low rates: after a receive brings back some messages but fewer than it
   * asked for, the next receive waits up to this long (SQS_RECEIVE_LINGER_MS), so messages arriving
   * meanwhile share one ReceiveMessage; the extra receive loops stand by until a receive comes back
   * full. 0: receive again at once, every loop always polling.
   */
  receiveLingerMs?: number;
  /** How often a paused poller looks at shouldPause() again. */
  pauseCheckMs?: number;
  /** Visibility is renewed at least this often while a handler runs; default a third of the timeout. */
  heartbeatIntervalMs?: number;
  /** Names of this poller's metrics (`<prefix>_messages_received_total`…), so two pollers can share a registry. */
  metricsPrefix?: string;
}

export type PollerSettings = Required<Omit<SqsPollerOptions, 'claimChecks' | 'parker'>> & Pick<SqsPollerOptions, 'claimChecks' | 'parker'>;

/** Defaults applied and every option checked at construction, so a bad value fails at start, not on the first message. */
export function pollerSettings(options: SqsPollerOptions): PollerSettings {
  const concurrency = options.concurrency ?? 32;
  const visibilityTimeoutSeconds = options.visibilityTimeoutSeconds ?? 30;
  const settings: PollerSettings = {
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
    receiveLingerMs: 0,
    pauseCheckMs: 1000,
    heartbeatIntervalMs: (visibilityTimeoutSeconds * 1000) / 3,
    metricsPrefix: 'wa_ingress_worker',
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
  } as PollerSettings;
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
  check(s.receiveLingerMs >= 0 && s.receiveLingerMs <= 1000, `receiveLingerMs must be 0..1000 (got ${s.receiveLingerMs})`);
  check(s.receiveGatherMs >= 0, `receiveGatherMs must be >= 0 (got ${s.receiveGatherMs})`);
  check(Number.isInteger(s.receiveLoops) && s.receiveLoops >= 1, `receiveLoops must be an integer >= 1 (got ${s.receiveLoops})`);
  check(s.shutdownTimeoutMs > 0, `shutdownTimeoutMs must be positive (got ${s.shutdownTimeoutMs})`);
  check(s.retryBaseSeconds > 0 && s.retryMaxSeconds >= s.retryBaseSeconds, `retry backoff must have 0 < base <= max (got ${s.retryBaseSeconds}, ${s.retryMaxSeconds})`);
  if (problems.length > 0) throw new Error(`SqsPoller: ${problems.join('; ')}`);
  return settings;
}
