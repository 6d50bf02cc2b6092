import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  ExponentialBackoff,
  TaskCancelledError,
  TimeoutStrategy,
  circuitBreaker,
  handleWhen,
  retry,
  timeout,
  type CircuitBreakerPolicy,
  type IBackoff,
  type IBackoffFactory,
  type IRetryBackoffContext,
  type RetryPolicy,
  type TimeoutPolicy,
} from 'cockatiel';
import { GatewayError, PermanentError, RetryableError } from '../errors';
import type { BirdConversationsTarget, BirdFlowTarget } from '../lines/line';
import type { Logger } from '../observability/logger';
import { Counter, Gauge, Histogram, type Registry } from '../observability/metrics';
import {
  buildConversationMessageBody,
  buildCreateConversation,
  buildCreateConversationMessage,
  contactPhoneNumber,
  conversationMessagesPath,
  conversationRefOf,
  conversationsOfContactPath,
  conversationsPath,
  firstConversationOf,
  type ConversationRef,
} from './conversations-request';
import type { BirdClient, BirdDelivery, BirdTransport, CircuitStateChange, CircuitStateName } from './delivery';
import { FLOW_SIGNATURE_HEADER, buildFlowBody, encodeFlowBody, signFlowBody } from './flow-request';
import { parseRetryAfter } from './retry-after';

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

/** One failed HTTP attempt, as the retry policy sees it. */
class AttemptFailure extends Error {
  constructor(
    message: string,
    readonly result: string,
    readonly retryable: boolean,
    readonly status?: number,
    readonly retryAfterMs?: number,
    /** False when Bird asked for a longer pause than we sleep in-process. */
    readonly retryInProcess = retryable,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Exponential backoff with jitter that waits at least as long as Bird's Retry-After asked. */
class RetryAfterBackoff implements IBackoff<IRetryBackoffContext<unknown>> {
  constructor(
    private readonly inner: IBackoffFactory<unknown>,
    readonly duration = 0,
  ) {}

  next(context: IRetryBackoffContext<unknown>): RetryAfterBackoff {
    const step = this.inner.next(context);
    const failure = 'error' in context.result ? context.result.error : undefined;
    const asked = failure instanceof AttemptFailure ? (failure.retryAfterMs ?? 0) : 0;
    return new RetryAfterBackoff(step, Math.max(step.duration, asked));
  }
}

interface HttpRequest {
  transport: BirdTransport;
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: Buffer;
}

interface HostBreaker {
  policy: CircuitBreakerPolicy;
  openedAt?: number;
}

/** The Bird client over Node's fetch: both transports, per-attempt timeout, retry, one breaker per host. */
export class HttpBirdClient implements BirdClient {
  private readonly logger: Logger;
  private readonly timeoutMs: number;
  private readonly baseUrl: string;
  private readonly maxRetryAfterMs: number;
  private readonly halfOpenAfterMs: number;
  private readonly consecutiveFailures: number;
  private readonly now: () => number;
  private readonly retryPolicy: RetryPolicy;
  private readonly timeoutPolicy: TimeoutPolicy;
  private readonly breakers = new Map<string, HostBreaker>();
  private readonly listeners = new Set<(change: CircuitStateChange) => void>();
  /** Concurrent deliveries for one contact share one conversation lookup (and at most one create). */
  private readonly conversationLookups = new Map<string, Promise<ConversationRef>>();

  private readonly requests: Counter<'transport' | 'outcome'>;
  private readonly attempts: Counter<'transport' | 'result'>;
  private readonly deliveryDuration: Histogram<'transport' | 'outcome'>;
  private readonly attemptDuration: Histogram<'transport'>;
  private readonly openCircuits: Gauge;

  constructor(options: HttpBirdClientOptions) {
    this.logger = options.logger.child({ component: 'bird' });
    this.timeoutMs = positive('timeoutMs', options.timeoutMs ?? DEFAULTS.timeoutMs);
    this.baseUrl = (options.birdApiBaseUrl ?? DEFAULTS.birdApiBaseUrl).replace(/\/+$/, '');
    new URL(this.baseUrl); // fail at start on a bad base URL, not on the first message
    this.now = options.now ?? Date.now;
    const maxAttempts = positive('retry.maxAttempts', options.retry?.maxAttempts ?? DEFAULTS.maxAttempts);
    this.maxRetryAfterMs = options.retry?.maxRetryAfterMs ?? DEFAULTS.maxRetryAfterMs;
    this.halfOpenAfterMs = positive('breaker.halfOpenAfterMs', options.breaker?.halfOpenAfterMs ?? DEFAULTS.halfOpenAfterMs);
    this.consecutiveFailures = positive('breaker.consecutiveFailures', options.breaker?.consecutiveFailures ?? DEFAULTS.consecutiveFailures);

    this.retryPolicy = retry(
      handleWhen((error) => error instanceof AttemptFailure && error.retryInProcess),
      {
        // cockatiel counts retries, not attempts.
        maxAttempts: maxAttempts - 1,
        backoff: new RetryAfterBackoff(
          new ExponentialBackoff({
            initialDelay: options.retry?.initialDelayMs ?? DEFAULTS.initialDelayMs,
            maxDelay: options.retry?.maxDelayMs ?? DEFAULTS.maxDelayMs,
          }),
        ),
      },
    );
    this.timeoutPolicy = timeout(this.timeoutMs, TimeoutStrategy.Aggressive);

    const registry = options.registry;
    this.requests = new Counter({
      name: 'wa_ingress_bird_requests_total',
      help: 'Deliveries to Bird by transport and outcome (delivered, skipped, rejected, unavailable, rate_limited, circuit_open)',
      labelNames: ['transport', 'outcome'],
      registers: [registry],
    });
    this.attempts = new Counter({
      name: 'wa_ingress_bird_attempts_total',
      help: 'HTTP attempts to Bird by transport and result (2xx, 3xx, 4xx, 408, 429, 5xx, timeout, network)',
      labelNames: ['transport', 'result'],
      registers: [registry],
    });
    this.deliveryDuration = new Histogram({
      name: 'wa_ingress_bird_delivery_duration_seconds',
      help: 'Time to deliver one event to Bird, retries and their waits included',
      labelNames: ['transport', 'outcome'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [registry],
    });
    this.attemptDuration = new Histogram({
      name: 'wa_ingress_bird_attempt_duration_seconds',
      help: 'Latency of one HTTP attempt to Bird',
      labelNames: ['transport'],
      buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30],
      registers: [registry],
    });
    this.openCircuits = new Gauge({
      name: 'wa_ingress_bird_circuit_open',
      help: 'Bird hosts whose circuit breaker is open',
      registers: [registry],
    });
  }

  /**
   * True while every Bird host called so far has an open breaker. One line's failing Flow host
   * must not stop the worker for every other line: its events retry through the queue instead.
   */
  get circuitOpen(): boolean {
    if (this.breakers.size === 0) return false;
    const now = Date.now();
    for (const breaker of this.breakers.values()) {
      if (breaker.openedAt === undefined || breaker.openedAt + this.halfOpenAfterMs <= now) return false;
    }
    return true;
  }

  circuitRetryAfterMs(): number {
    const now = Date.now(); // cockatiel times its half-open window with Date.now
    let earliest = 0;
    for (const breaker of this.breakers.values()) {
      if (breaker.openedAt === undefined) continue;
      const remaining = breaker.openedAt + this.halfOpenAfterMs - now;
      if (remaining > 0 && (earliest === 0 || remaining < earliest)) earliest = remaining;
    }
    return earliest;
  }

  onCircuitChange(listener: (change: CircuitStateChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async deliver(delivery: BirdDelivery): Promise<void> {
    const transport = delivery.target.transport;
    const started = process.hrtime.bigint();
    let outcome: Outcome = 'delivered';
    try {
      const delivered =
        delivery.target.transport === 'flow'
          ? await this.deliverToFlow(delivery, delivery.target)
          : await this.deliverToConversation(delivery, delivery.target);
      if (!delivered) outcome = 'skipped';
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
  }

  private async deliverToFlow(delivery: BirdDelivery, target: BirdFlowTarget): Promise<boolean> {
    const raw = encodeFlowBody(buildFlowBody(delivery));
    const request: HttpRequest = {
      transport: 'flow',
      method: 'POST',
      url: target.flowUrl,
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/json',
        Authorization: `Bearer ${target.flowSecret}`,
        'Idempotency-Key': delivery.event.key,
        [FLOW_SIGNATURE_HEADER]: signFlowBody(target.flowSecret, raw),
      },
      body: raw,
    };
    await this.throughBreaker(new URL(target.flowUrl).host, () => this.send(request));
    return true;
  }

  private async deliverToConversation(delivery: BirdDelivery, target: BirdConversationsTarget): Promise<boolean> {
    const body = buildConversationMessageBody(delivery);
    if (!body) {
      this.logger.debug(
        { lineId: delivery.lineId, kind: delivery.event.kind, reference: delivery.event.key },
        'conversations transport carries only messages: event accepted without a Bird call',
      );
      return false;
    }
    const phoneNumber = contactPhoneNumber(delivery.event);
    if (!phoneNumber) {
      throw new PermanentError(
        'bird_contact_unaddressable',
        `Event ${delivery.event.key} has no contact phone number; Bird conversations address WhatsApp contacts by phone number. Use the flow transport for this line.`,
      );
    }
    const headers = {
      'Content-Type': 'application/json',
      Accept: 'application/json',
      Authorization: `AccessKey ${target.accessKey}`,
    };
    await this.throughBreaker(new URL(this.baseUrl).host, async () => {
      const conversation = await this.conversationFor(delivery, target, phoneNumber, headers);
      const message = buildCreateConversationMessage(delivery, body, phoneNumber, conversation.contactParticipantId);
      await this.send({
        transport: 'conversations',
        method: 'POST',
        url: this.baseUrl + conversationMessagesPath(target.workspaceId, conversation.conversationId),
        headers: { ...headers, 'Idempotency-Key': delivery.event.key },
        body: Buffer.from(JSON.stringify(message), 'utf8'),
      });
    });
    return true;
  }

  private conversationFor(
    delivery: BirdDelivery,
    target: BirdConversationsTarget,
    phoneNumber: string,
    headers: Record<string, string>,
  ): Promise<ConversationRef> {
    const key = `${target.workspaceId}\n${target.channelId}\n${phoneNumber}`;
    const pending = this.conversationLookups.get(key);
    if (pending) return pending;
    const lookup = (async () => {
      const listed = await this.send({
        transport: 'conversations',
        method: 'GET',
        url: this.baseUrl + conversationsOfContactPath(target.workspaceId, phoneNumber, target.channelId),
        headers: { Authorization: headers.Authorization!, Accept: 'application/json' },
      });
      const found = firstConversationOf(listed);
      if (found) return found;
      const created = conversationRefOf(
        await this.send({
          transport: 'conversations',
          method: 'POST',
          url: this.baseUrl + conversationsPath(target.workspaceId),
          headers: { ...headers, 'Idempotency-Key': `conversation:${delivery.event.key}` },
          body: Buffer.from(JSON.stringify(buildCreateConversation(target.channelId, phoneNumber)), 'utf8'),
        }),
      );
      if (!created) {
        throw new RetryableError('bird_bad_response', 'Bird created a conversation but its answer has no conversation id');
      }
      return created;
    })().finally(() => this.conversationLookups.delete(key));
    this.conversationLookups.set(key, lookup);
    return lookup;
  }

  /** One HTTP call with per-attempt timeout and retries; answers the parsed JSON body (or undefined). */
  private async send(request: HttpRequest): Promise<unknown> {
    try {
      return await this.retryPolicy.execute(() => this.attempt(request));
    } catch (error) {
      throw this.toGatewayError(error, request);
    }
  }

  private async attempt(request: HttpRequest): Promise<unknown> {
    const endTimer = this.attemptDuration.startTimer({ transport: request.transport });
    try {
      const answer = await this.timeoutPolicy.execute(async ({ signal }) => {
        const response = await fetch(request.url, {
          method: request.method,
          headers: request.headers,
          body: request.body,
          signal,
          // Never follow a redirect with the secret in the headers.
          redirect: 'manual',
        });
        return { status: response.status, headers: response.headers, text: await response.text() };
      });
      this.attempts.inc({ transport: request.transport, result: resultOfStatus(answer.status) });
      if (answer.status >= 200 && answer.status < 300) return parseJsonOrUndefined(answer.text);
      throw this.failureOf(answer.status, answer.headers, answer.text);
    } catch (error) {
      if (error instanceof AttemptFailure) throw error;
      const timedOut = error instanceof TaskCancelledError;
      const result = timedOut ? 'timeout' : 'network';
      this.attempts.inc({ transport: request.transport, result });
      throw new AttemptFailure(
        timedOut ? `Bird did not answer within ${this.timeoutMs} ms` : `Bird could not be reached: ${errorSummary(error)}`,
        result,
        true,
        undefined,
        undefined,
        true,
        { cause: error },
      );
    } finally {
      endTimer();
    }
  }

  private failureOf(status: number, headers: Headers, text: string): AttemptFailure {
    const code = birdErrorCode(text);
    const detail = `Bird answered ${status}${code ? ` (${code})` : ''}`;
    const retryable = status === 408 || status === 429 || status >= 500;
    if (!retryable) return new AttemptFailure(detail, resultOfStatus(status), false, status);
    const retryAfterMs = parseRetryAfter(headers.get('retry-after'), this.now());
    const inProcess = retryAfterMs === undefined || retryAfterMs <= this.maxRetryAfterMs;
    return new AttemptFailure(detail, resultOfStatus(status), true, status, retryAfterMs, inProcess);
  }

  private toGatewayError(error: unknown, request: HttpRequest): unknown {
    if (!(error instanceof AttemptFailure)) return error;
    const where = `${request.transport} ${request.method} ${new URL(request.url).host}`;
    if (!error.retryable) {
      return new PermanentError(
        `bird_rejected_${error.status ?? 'unknown'}`,
        `${error.message} to ${where}: the request is wrong or not allowed (check the line's Bird target and secret); not retried`,
        { cause: error },
      );
    }
    const reason = error.status === 429 ? 'bird_rate_limited' : 'bird_unavailable';
    const why = error.retryInProcess ? 'attempts exhausted' : `Retry-After ${error.retryAfterMs} ms is longer than we wait in-process`;
    return new RetryableError(reason, `${error.message} to ${where}: ${why}`, { cause: error, retryAfterMs: error.retryAfterMs });
  }

  private async throughBreaker(host: string, work: () => Promise<unknown>): Promise<void> {
    try {
      await this.breakerFor(host).policy.execute(work);
    } catch (error) {
      if (error instanceof BrokenCircuitError) {
        throw new RetryableError('bird_circuit_open', `Circuit to ${host} is open after repeated failures; not calling Bird`, {
          cause: error,
          retryAfterMs: this.circuitRetryAfterMs() || this.halfOpenAfterMs,
        });
      }
      throw error;
    }
  }

  private breakerFor(host: string): HostBreaker {
    const existing = this.breakers.get(host);
    if (existing) return existing;
    const policy = circuitBreaker(
      // Only "Bird is not answering well" opens the breaker; a rejected request says Bird is up.
      handleWhen((error) => error instanceof RetryableError),
      { halfOpenAfter: this.halfOpenAfterMs, breaker: new ConsecutiveBreaker(this.consecutiveFailures) },
    );
    const breaker: HostBreaker = { policy };
    policy.onStateChange((state) => {
      if (state === CircuitState.Open) breaker.openedAt = Date.now();
      else breaker.openedAt = undefined;
      this.openCircuits.set([...this.breakers.values()].filter((b) => b.openedAt !== undefined).length);
      const name = stateName(state);
      const log = { host, state: name };
      if (name === 'open') this.logger.warn(log, 'bird circuit opened: deliveries to this host fail fast');
      else this.logger.info(log, 'bird circuit state changed');
      for (const listener of this.listeners) listener({ host, state: name });
    });
    this.breakers.set(host, breaker);
    return breaker;
  }
}

export function createBirdClient(options: HttpBirdClientOptions): HttpBirdClient {
  return new HttpBirdClient(options);
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`Bird client option ${name} must be a positive number, got ${value}`);
  return value;
}

function stateName(state: CircuitState): CircuitStateName {
  if (state === CircuitState.HalfOpen) return 'half-open';
  if (state === CircuitState.Closed) return 'closed';
  return 'open';
}

function resultOfStatus(status: number): string {
  if (status === 408 || status === 429) return String(status);
  return `${Math.floor(status / 100)}xx`;
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

function errorSummary(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}

function parseJsonOrUndefined(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Bird's error `code` only: the rest of an error body may echo what we sent (phone numbers). */
function birdErrorCode(text: string): string | undefined {
  const parsed = parseJsonOrUndefined(text);
  const code = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>).code : undefined;
  return typeof code === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(code) ? code : undefined;
}
