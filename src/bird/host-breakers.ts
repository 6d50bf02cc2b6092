import { BrokenCircuitError, CircuitState, ConsecutiveBreaker, circuitBreaker, handleWhen, type CircuitBreakerPolicy } from 'cockatiel';
import { RetryableError } from '../errors';
import type { Logger } from '../observability/logger';
import { Gauge, type Registry } from '../observability/metrics';
import type { CircuitStateChange, CircuitStateName } from './delivery';

export interface HostBreakersOptions {
  /** Consecutive failed calls (after their retries) to one host that open its breaker. */
  consecutiveFailures: number;
  halfOpenAfterMs: number;
  logger: Logger;
  registry: Registry;
}

interface HostBreaker {
  policy: CircuitBreakerPolicy;
  openedAt?: number;
}

/**
 * One circuit breaker per Bird host: a Flow host that keeps failing fails its own deliveries fast,
 * and only "Bird is not answering well" (a RetryableError) counts; a rejection says Bird is up.
 */
export class HostBreakers {
  private readonly breakers = new Map<string, HostBreaker>();
  private readonly listeners = new Set<(change: CircuitStateChange) => void>();
  private readonly openCircuits: Gauge;

  constructor(private readonly options: HostBreakersOptions) {
    this.openCircuits = new Gauge({ name: 'wa_ingress_bird_circuit_open', help: 'Bird hosts whose circuit breaker is open', registers: [options.registry] });
  }

  /** Runs `work` through `host`'s breaker; an open breaker throws RetryableError('bird_circuit_open') with the wait until its probe. */
  async run<T>(host: string, work: () => Promise<T>): Promise<T> {
    try {
      return await this.breakerFor(host).policy.execute(work);
    } catch (error) {
      if (error instanceof BrokenCircuitError) {
        throw new RetryableError('bird_circuit_open', `Circuit to ${host} is open after repeated failures; not calling Bird`, {
          cause: error,
          retryAfterMs: this.retryAfterMs() || this.options.halfOpenAfterMs,
        });
      }
      throw error;
    }
  }

  /** True while every host called so far has an open breaker whose probe is not yet due. */
  get allOpen(): boolean {
    if (this.breakers.size === 0) return false;
    const now = Date.now();
    for (const breaker of this.breakers.values()) {
      if (breaker.openedAt === undefined || breaker.openedAt + this.options.halfOpenAfterMs <= now) return false;
    }
    return true;
  }

  /** Milliseconds until the earliest open breaker allows a probe; 0 when none is open. */
  retryAfterMs(): number {
    const now = Date.now(); // cockatiel times its half-open window with Date.now
    let earliest = 0;
    for (const breaker of this.breakers.values()) {
      if (breaker.openedAt === undefined) continue;
      const remaining = breaker.openedAt + this.options.halfOpenAfterMs - now;
      if (remaining > 0 && (earliest === 0 || remaining < earliest)) earliest = remaining;
    }
    return earliest;
  }

  onChange(listener: (change: CircuitStateChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private breakerFor(host: string): HostBreaker {
    const existing = this.breakers.get(host);
    if (existing) return existing;
    const policy = circuitBreaker(
      handleWhen((error) => error instanceof RetryableError),
      { halfOpenAfter: this.options.halfOpenAfterMs, breaker: new ConsecutiveBreaker(this.options.consecutiveFailures) },
    );
    const breaker: HostBreaker = { policy };
    policy.onStateChange((state) => {
      breaker.openedAt = state === CircuitState.Open ? Date.now() : undefined;
      this.openCircuits.set([...this.breakers.values()].filter((b) => b.openedAt !== undefined).length);
      const name = stateName(state);
      if (name === 'open') this.options.logger.warn({ host, state: name }, 'bird circuit opened: deliveries to this host fail fast');
      else this.options.logger.info({ host, state: name }, 'bird circuit state changed');
      for (const listener of this.listeners) listener({ host, state: name });
    });
    this.breakers.set(host, breaker);
    return breaker;
  }
}

function stateName(state: CircuitState): CircuitStateName {
  if (state === CircuitState.HalfOpen) return 'half-open';
  if (state === CircuitState.Closed) return 'closed';
  return 'open';
}
