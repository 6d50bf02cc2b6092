import { Counter, type Registry } from '../observability/metrics';

export const SQS_CALLS_METRIC = 'wa_ingress_sqs_calls_total';

/**
 * `wa_ingress_sqs_calls_total{operation}`: shared by every component that calls SQS in the process
 * (poller, DLQ parker, ingress producer), so the first one registers it and the others reuse it.
 */
export function sqsCallsCounter(registry: Registry): Counter<'operation'> {
  const existing = registry.getSingleMetric(SQS_CALLS_METRIC);
  if (existing) return existing as Counter<'operation'>;
  return new Counter({
    name: SQS_CALLS_METRIC,
    help: 'SQS API calls made, by operation (batching keeps this per event low)',
    labelNames: ['operation'],
    registers: [registry],
  });
}
