import type { IBackoff, IRetryBackoffContext } from 'cockatiel';

/**
 * The one backoff of the codebase. Equal-jitter exponential: the step is min(max, base·2^(attempt−1)),
 * half of it fixed and half random, so a burst of failures spreads out without a wait collapsing
 * towards zero. Units are the caller's (seconds for SQS visibility, ms in-process).
 */
export function exponentialBackoff(attempt: number, base: number, max: number, random: () => number = Math.random): number {
  const step = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  return step / 2 + (random() * step) / 2;
}

export interface EqualJitterBackoffOptions {
  initialDelayMs: number;
  maxDelayMs: number;
  /** A wait the failure itself asks for (e.g. Retry-After): the backoff is never shorter. */
  floorMs?: (context: IRetryBackoffContext<unknown>) => number;
  random?: () => number;
}

/** exponentialBackoff as a cockatiel backoff, for in-process retries (cockatiel's `attempt` starts at 1). */
export class EqualJitterBackoff implements IBackoff<IRetryBackoffContext<unknown>> {
  constructor(
    private readonly options: EqualJitterBackoffOptions,
    readonly duration = 0,
  ) {}

  next(context: IRetryBackoffContext<unknown>): EqualJitterBackoff {
    const { initialDelayMs, maxDelayMs, floorMs, random } = this.options;
    const wait = exponentialBackoff(context.attempt, initialDelayMs, maxDelayMs, random);
    return new EqualJitterBackoff(this.options, Math.max(wait, floorMs?.(context) ?? 0));
  }
}
