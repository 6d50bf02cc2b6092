import type { LatencyFigures } from '../console/ui/contract';
import type { JourneyStep } from './journey';

export type { LatencyFigures } from '../console/ui/contract';

/** p50 and p95 (nearest rank) of durations in ms; nulls without samples. */
export function latencyFigures(samplesMs: number[]): LatencyFigures {
  if (samplesMs.length === 0) return { samples: 0, p50Ms: null, p95Ms: null };
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length))) - 1]!;
  return { samples: sorted.length, p50Ms: at(0.5), p95Ms: at(0.95) };
}

/** The first time a journey reached `name`, in epoch ms. */
export function stepTime(journey: JourneyStep[] | undefined, name: string): number | undefined {
  const found = journey?.find((s) => s.step === name);
  const at = found ? Date.parse(found.at) : Number.NaN;
  return Number.isFinite(at) ? at : undefined;
}

/** An inbound record's Meta timestamp → its `delivered` step, in ms; undefined when it has not been delivered. */
export function metaToBirdMs(record: { metaAt?: unknown; journey?: JourneyStep[] }): number | undefined {
  const from = typeof record.metaAt === 'string' ? Date.parse(record.metaAt) : Number.NaN;
  const to = stepTime(record.journey, 'delivered');
  return Number.isFinite(from) && to !== undefined && to >= from ? to - from : undefined;
}

/** A reply record's inbound receive time → its `sent` step, in ms; undefined for other replies or before it is sent. */
export function receivedToReplySentMs(record: { inboundReceivedAt?: unknown; journey?: JourneyStep[] }): number | undefined {
  const from = typeof record.inboundReceivedAt === 'string' ? Date.parse(record.inboundReceivedAt) : Number.NaN;
  const to = stepTime(record.journey, 'sent');
  return Number.isFinite(from) && to !== undefined && to >= from ? to - from : undefined;
}
