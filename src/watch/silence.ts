/**
 * `inbound_silent`: a line that usually receives messages has received none for much longer than
 * its usual gap. "Usual" comes from the line's own recent history, read from the journal's line
 * index each round (its newest arrivals), so it needs no state of its own:
 * - the line "usually receives" when it has at least `minArrivals` arrivals in that history;
 * - its usual gap is the 95th percentile of the gaps between those arrivals;
 * - it is silent when the time since its last arrival exceeds `factor` × that gap, and at least `floorMs`
 *   (a line busy every few seconds is not "silent" after a quiet minute).
 */
export interface SilenceRule {
  minArrivals: number;
  factor: number;
  floorMs: number;
}

export const DEFAULT_SILENCE_RULE: SilenceRule = { minArrivals: 20, factor: 4, floorMs: 30 * 60_000 };

/** The q-quantile (0..1) of `values` by the nearest-rank method; undefined when empty. */
export function quantile(values: number[], q: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1];
}

export interface SilenceVerdict {
  silent: boolean;
  /** The usual gap (p95), when the line has enough history to have one. */
  usualGapMs?: number;
  /** Time since the last arrival. */
  quietMs?: number;
}

/** `arrivals`: epoch ms of the line's recent inbound messages, in any order. */
export function silenceVerdict(arrivals: number[], now: number, rule: SilenceRule = DEFAULT_SILENCE_RULE): SilenceVerdict {
  if (arrivals.length < rule.minArrivals) return { silent: false };
  const sorted = [...arrivals].sort((a, b) => a - b);
  const gaps = sorted.slice(1).map((t, i) => t - sorted[i]!);
  const usualGapMs = quantile(gaps, 0.95)!;
  const quietMs = now - sorted[sorted.length - 1]!;
  return { silent: quietMs > Math.max(rule.factor * usualGapMs, rule.floorMs), usualGapMs, quietMs };
}

/** How to say it in the problem's detail. */
export function silenceDetail(verdict: SilenceVerdict): string {
  const minutes = (ms: number | undefined) => `${Math.round((ms ?? 0) / 60_000)} min`;
  return `no message for ${minutes(verdict.quietMs)}; usual gap (p95) ${minutes(verdict.usualGapMs)}`;
}
