import { Histogram, type Registry } from 'prom-client';

/**
 * Delivery latency by stage, observed where each step happens:
 * - `meta_to_bird`: Meta's message timestamp (whole seconds) → delivered to Bird (worker);
 * - `received_to_bird`: the ingress's receive time → delivered to Bird (worker);
 * - `received_to_reply_sent`: the inbound event's receive time → its Flow reply accepted by Meta (sender).
 */
export type DeliveryStage = 'meta_to_bird' | 'received_to_bird' | 'received_to_reply_sent';

export const STAGE_HISTOGRAM = 'wa_ingress_stage_seconds';

/** One histogram per process, shared by the worker and the sender of the `all` role. */
export function stageHistogram(registry: Registry): Histogram<'stage'> {
  const existing = registry.getSingleMetric(STAGE_HISTOGRAM);
  if (existing) return existing as Histogram<'stage'>;
  return new Histogram({
    name: STAGE_HISTOGRAM,
    help: 'Delivery latency by stage: meta_to_bird, received_to_bird, received_to_reply_sent (seconds)',
    labelNames: ['stage'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600],
    registers: [registry],
  });
}

/** Seconds from `fromMs` to `toMs`, or undefined when either is unknown or the clocks disagree (negative). */
export function stageSeconds(fromMs: number | undefined, toMs: number): number | undefined {
  if (fromMs === undefined || !Number.isFinite(fromMs)) return undefined;
  const seconds = (toMs - fromMs) / 1000;
  return seconds >= 0 ? seconds : undefined;
}
