import { Counter, Histogram, type Registry } from 'prom-client';

/** What the ingress producer counts; the names predate the shared batcher and are kept for dashboards. */
export class ProducerMetrics {
  readonly batches: Counter<'outcome'>;
  readonly batchSize: Histogram;
  readonly claimChecks: Counter;
  readonly entryFailures: Counter<'reason'>;

  constructor(registry: Registry | undefined) {
    const registers = registry ? [registry] : [];
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
  }
}
