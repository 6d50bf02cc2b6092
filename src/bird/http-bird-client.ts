import { GatewayError, PermanentError, RetryableError } from '../errors';
import type { Logger } from '../observability/logger';
import { Counter, Histogram, type Registry } from '../observability/metrics';
import { ConversationsTransport } from './conversations-transport';
import type { BirdAnswer, BirdClient, BirdDelivery, CircuitStateChange } from './delivery';
import { FlowTransport } from './flow-transport';
import { HostBreakers } from './host-breakers';
import { HttpCallPolicy, errorSummary } from './http-call-policy';

export interface BirdRetryOptions {
  /** Attempts per HTTP call, the first included. Default 3. */
  maxAttempts?: number;
  initialDelayMs?: number;
  maxDelayMs?: number;
  /**
   * Longest Retry-After honoured by sleeping in-process; a longer one ends the delivery with a
   * RetryableError carrying retryAfterMs, so the worker delays the SQS message instead.
   */
  maxRetryAfterMs?: number;
}

export interface BirdBreakerOptions {
  /** Consecutive failed deliveries (after their retries) to one host that open its breaker. */
  consecutiveFailures?: number;
  halfOpenAfterMs?: number;
}

export interface HttpBirdClientOptions {
  logger: Logger;
  registry: Registry;
  /** Per HTTP attempt, response body included. */
  timeoutMs?: number;
  /** Conversations transport only; flow requests go to the line's flowUrl. */
  birdApiBaseUrl?: string;
  /** Production: a line's flowUrl must be https (its Bearer secret travels with every call). */
  requireHttps?: boolean;
  retry?: BirdRetryOptions;
  breaker?: BirdBreakerOptions;
  /** Clock for Retry-After HTTP-dates. */
  now?: () => number;
}

const DEFAULTS = {
  timeoutMs: 15_000,
  birdApiBaseUrl: 'https://api.bird.com',
  maxAttempts: 3,
  initialDelayMs: 200,
  maxDelayMs: 5_000,
  maxRetryAfterMs: 30_000,
  consecutiveFailures: 5,
  halfOpenAfterMs: 30_000,
};

type Outcome = 'delivered' | 'skipped' | 'rejected' | 'unavailable' | 'rate_limited' | 'circuit_open';

/**
 * The Bird client: picks the line's transport (flow or conversations), each of which calls Bird
 * through the shared HTTP call policy (timeout, retry, error mapping) and the per-host breakers;
 * counts and logs each delivery. Options are checked here, at start.
 */
export class HttpBirdClient implements BirdClient {
  private readonly logger: Logger;
  private readonly requireHttps: boolean;
  private readonly breakers: HostBreakers;
  private readonly flow: FlowTransport;
  private readonly conversations: ConversationsTransport;
  private readonly requests: Counter<'transport' | 'outcome'>;
  private readonly deliveryDuration: Histogram<'transport' | 'outcome'>;

  constructor(options: HttpBirdClientOptions) {
    this.logger = options.logger.child({ component: 'bird' });
    this.requireHttps = options.requireHttps ?? false;
    const baseUrl = (options.birdApiBaseUrl ?? DEFAULTS.birdApiBaseUrl).replace(/\/+$/, '');
    new URL(baseUrl); // fail at start on a bad base URL, not on the first message
    if (this.requireHttps && !baseUrl.startsWith('https://')) throw new RangeError(`Bird client: birdApiBaseUrl must be https, got ${baseUrl}`);
    const policy = new HttpCallPolicy({
      timeoutMs: positive('timeoutMs', options.timeoutMs ?? DEFAULTS.timeoutMs),
      maxAttempts: positive('retry.maxAttempts', options.retry?.maxAttempts ?? DEFAULTS.maxAttempts),
      initialDelayMs: positive('retry.initialDelayMs', options.retry?.initialDelayMs ?? DEFAULTS.initialDelayMs),
      maxDelayMs: positive('retry.maxDelayMs', options.retry?.maxDelayMs ?? DEFAULTS.maxDelayMs),
      maxRetryAfterMs: options.retry?.maxRetryAfterMs ?? DEFAULTS.maxRetryAfterMs,
      now: options.now ?? Date.now,
      registry: options.registry,
    });
    this.breakers = new HostBreakers({
      consecutiveFailures: positive('breaker.consecutiveFailures', options.breaker?.consecutiveFailures ?? DEFAULTS.consecutiveFailures),
      halfOpenAfterMs: positive('breaker.halfOpenAfterMs', options.breaker?.halfOpenAfterMs ?? DEFAULTS.halfOpenAfterMs),
      logger: this.logger,
      registry: options.registry,
    });
    this.flow = new FlowTransport(policy, this.breakers);
    this.conversations = new ConversationsTransport(policy, this.breakers, baseUrl, this.logger);

    this.requests = new Counter({
      name: 'wa_ingress_bird_requests_total',
      help: 'Deliveries to Bird by transport and outcome (delivered, skipped, rejected, unavailable, rate_limited, circuit_open)',
      labelNames: ['transport', 'outcome'],
      registers: [options.registry],
    });
    this.deliveryDuration = new Histogram({
      name: 'wa_ingress_bird_delivery_duration_seconds',
      help: 'Time to deliver one event to Bird, retries and their waits included',
      labelNames: ['transport', 'outcome'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [options.registry],
    });
  }

  /**
   * True while every Bird host called so far has an open breaker. One line's failing Flow host
   * must not stop the worker for every other line: its events retry through the queue instead.
   */
  get circuitOpen(): boolean {
    return this.breakers.allOpen;
  }

  circuitRetryAfterMs(): number {
    return this.breakers.retryAfterMs();
  }

  onCircuitChange(listener: (change: CircuitStateChange) => void): () => void {
    return this.breakers.onChange(listener);
  }

  async deliver(delivery: BirdDelivery): Promise<BirdAnswer> {
    const { target } = delivery;
    const transport = target.transport;
    const started = process.hrtime.bigint();
    let outcome: Outcome = 'delivered';
    let answer: BirdAnswer = {};
    try {
      if (target.transport === 'flow') {
        if (this.requireHttps && !target.flowUrl.startsWith('https://')) {
          throw new PermanentError('bird_target_insecure', `Line ${delivery.lineId}: flowUrl must be https in production (its Bearer secret travels with every call)`);
        }
        answer = await this.flow.deliver(delivery, target);
      } else if (!(await this.conversations.deliver(delivery, target))) {
        outcome = 'skipped';
      }
    } catch (error) {
      outcome = outcomeOf(error);
      this.logger.warn(
        { lineId: delivery.lineId, transport, kind: delivery.event.kind, reference: delivery.event.key, reason: reasonOf(error), err: errorSummary(error) },
        'bird delivery failed',
      );
      throw error;
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.requests.inc({ transport, outcome });
      this.deliveryDuration.observe({ transport, outcome }, seconds);
    }
    this.logger.debug({ lineId: delivery.lineId, transport, kind: delivery.event.kind, reference: delivery.event.key, outcome }, 'bird delivery done');
    return answer;
  }
}

export function createBirdClient(options: HttpBirdClientOptions): HttpBirdClient {
  return new HttpBirdClient(options);
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`Bird client option ${name} must be a positive number, got ${value}`);
  return value;
}

function outcomeOf(error: unknown): Outcome {
  if (error instanceof PermanentError) return 'rejected';
  if (error instanceof RetryableError) {
    if (error.reason === 'bird_circuit_open') return 'circuit_open';
    if (error.reason === 'bird_rate_limited') return 'rate_limited';
  }
  return 'unavailable';
}

function reasonOf(error: unknown): string {
  return error instanceof GatewayError ? error.reason : 'unexpected';
}
