import { exponentialBackoff } from '../resilience/backoff';

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
