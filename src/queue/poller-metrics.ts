import { Counter, Gauge, Histogram, type Registry } from '../observability/metrics';
import { sqsCallsCounter } from './sqs-calls';

/** Why a message was left to come back: the handler said retry, the handler threw, or its claim check could not be read yet. */
export type RetryCause = 'handler' | 'error' | 'claim_check';
export type HandlerOutcomeLabel = 'delete' | 'retry' | 'error' | 'aborted';

/** The worker's queue metrics, in one place so the scheduler, the visibility keeper and the poller count alike. */
export class PollerMetrics {
  readonly calls: Counter<'operation'>;
  readonly failures: Counter<'operation'>;
  readonly received: Counter;
  readonly deleted: Counter;
  readonly retried: Counter<'cause'>;
  readonly handedBack: Counter<'when'>;
  readonly inFlight: Gauge;
  readonly paused: Gauge;
  readonly handlerSeconds: Histogram<'outcome'>;

  /** `prefix` names the metrics (`<prefix>_messages_received_total`…), so two pollers can share a registry. */
  constructor(registry: Registry, prefix = 'wa_ingress_worker') {
    const registers = [registry];
    this.calls = sqsCallsCounter(registry);
    this.failures = new Counter({
      name: `${prefix}_sqs_failures_total`,
      help: 'SQS calls, or batch entries, the worker could not complete (after retries)',
      labelNames: ['operation'],
      registers,
    });
    this.received = new Counter({ name: `${prefix}_messages_received_total`, help: 'SQS messages received', registers });
    this.deleted = new Counter({ name: `${prefix}_messages_deleted_total`, help: 'SQS messages deleted after handling', registers });
    this.retried = new Counter({
      name: `${prefix}_messages_retried_total`,
      help: 'SQS messages left to come back later, by cause (handler: outcome retry; error: handler threw; claim_check: body not readable yet)',
      labelNames: ['cause'],
      registers,
    });
    this.handedBack = new Counter({
      name: `${prefix}_messages_handed_back_total`,
      help: 'Messages made visible again at once on shutdown (visibility 0), by when: in_flight (handler still running at the bound) or received (a receive that returned after stop)',
      labelNames: ['when'],
      registers,
    });
    this.inFlight = new Gauge({ name: `${prefix}_messages_in_flight`, help: 'Messages being handled now', registers });
    this.paused = new Gauge({ name: `${prefix}_paused`, help: '1 while receiving is paused (shouldPause)', registers });
    this.handlerSeconds = new Histogram({
      name: `${prefix}_handler_duration_seconds`,
      help: 'Time the message handler took, by outcome',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
  }

  /** Every SQS call of the worker goes through here, so `wa_ingress_sqs_calls_total` counts what it spends. */
  async call<T>(operation: string, send: () => Promise<T>): Promise<T> {
    this.calls.inc({ operation });
    try {
      return await send();
    } catch (error) {
      if ((error as Error)?.name !== 'AbortError') this.failures.inc({ operation });
      throw error;
    }
  }
}
