import { setTimeout as sleep } from 'node:timers/promises';

/** Meta's default throughput per business number. */
export const DEFAULT_SEND_RATE = 80;

export interface LineRateLimiterOptions {
  /** How long a 130429 halves the line's rate (Meta: back off, then try the full rate again). */
  slowdownMs?: number;
  /** Lowest rate a run of 130429s can bring a line to. */
  minRate?: number;
  clock?: () => number;
  wait?: (ms: number) => Promise<unknown>;
}

interface Bucket {
  tokens: number;
  refilledAt: number;
  /** 1, ½, ¼… while Meta keeps answering 130429; back to 1 a minute after the last one. */
  factor: number;
  slowUntil: number;
}

/**
 * One token bucket per line (Meta's throughput limit is per phone number), in this process: a line's
 * `sendRateLimit` is what one worker process sends, so with N workers set it to the number's limit / N
 * (or leave it and let 130429 halve each process's rate). The burst is one second's worth.
 * Written here: a bucket per key with a live rate change is a dozen lines; limiter libraries fix the rate at construction.
 */
export class LineRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly slowdownMs: number;
  private readonly minRate: number;
  private readonly clock: () => number;
  private readonly wait: (ms: number) => Promise<unknown>;

  constructor(options: LineRateLimiterOptions = {}) {
    this.slowdownMs = options.slowdownMs ?? 60_000;
    this.minRate = options.minRate ?? 1;
    this.clock = options.clock ?? Date.now;
    this.wait = options.wait ?? ((ms) => sleep(ms));
  }

  /** The rate the line sends at now. */
  currentRate(lineId: string, rate: number = DEFAULT_SEND_RATE): number {
    const bucket = this.buckets.get(lineId);
    if (!bucket || bucket.slowUntil <= this.clock()) return rate;
    return Math.max(this.minRate, rate * bucket.factor);
  }

  /** Takes one token; resolves when the send may go. Tokens are reserved in call order, so waiters keep their turn. */
  async acquire(lineId: string, rate: number = DEFAULT_SEND_RATE): Promise<void> {
    const now = this.clock();
    const bucket = this.bucket(lineId, now);
    if (bucket.slowUntil <= now) bucket.factor = 1;
    const perSecond = this.currentRate(lineId, rate);
    bucket.tokens = Math.min(perSecond, bucket.tokens + ((now - bucket.refilledAt) / 1000) * perSecond);
    bucket.refilledAt = now;
    bucket.tokens -= 1;
    if (bucket.tokens < 0) await this.wait(Math.ceil((-bucket.tokens / perSecond) * 1000));
  }

  /** Meta answered 130429: halve the line's rate for `slowdownMs` (again on each further 130429). */
  slowDown(lineId: string): void {
    const now = this.clock();
    const bucket = this.bucket(lineId, now);
    bucket.factor = bucket.slowUntil > now ? bucket.factor / 2 : 0.5;
    bucket.slowUntil = now + this.slowdownMs;
  }

  private bucket(lineId: string, now: number): Bucket {
    let bucket = this.buckets.get(lineId);
    if (!bucket) {
      // A new bucket starts full (clipped to one second's worth on first use).
      bucket = { tokens: Number.MAX_SAFE_INTEGER, refilledAt: now, factor: 1, slowUntil: 0 };
      this.buckets.set(lineId, bucket);
    }
    return bucket;
  }
}
