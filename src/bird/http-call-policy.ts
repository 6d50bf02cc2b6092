import type { IncomingHttpHeaders } from 'node:http';
import { TaskCancelledError, TimeoutStrategy, handleWhen, retry, timeout, type RetryPolicy, type TimeoutPolicy } from 'cockatiel';
import { PermanentError, RetryableError } from '../errors';
import { headerValue, sharedHttpTransport, type HttpTransport } from '../http/keep-alive-transport';
import { Counter, Histogram, type Registry } from '../observability/metrics';
import { EqualJitterBackoff } from '../resilience/backoff';
import type { BirdTransport } from './delivery';
import { parseRetryAfter } from './retry-after';

/** One HTTP call to Bird, as a transport describes it. */
export interface HttpRequest {
  transport: BirdTransport;
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** Cuts the call short (shutdown): the attempt in flight is aborted and no retry follows. */
  signal?: AbortSignal;
}

export interface HttpCallPolicyOptions {
  /** Per HTTP attempt, response body included. */
  timeoutMs: number;
  /** Attempts per call, the first included. */
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  /**
   * Longest Retry-After honoured by sleeping in-process; a longer one ends the call with a
   * RetryableError carrying retryAfterMs, so the worker delays the SQS message instead.
   */
  maxRetryAfterMs: number;
  /** Clock for Retry-After HTTP-dates. */
  now: () => number;
  registry: Registry;
  transport?: HttpTransport;
}

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

/**
 * How the gateway calls Bird over HTTP, whatever the transport: one attempt with a timeout and no
 * redirects; retries of network errors, timeouts, 408, 429 and 5xx with backoff (at least Bird's
 * Retry-After); and the mapping of what is left to a PermanentError (other 4xx) or a RetryableError.
 */
export class HttpCallPolicy {
  private readonly retryPolicy: RetryPolicy;
  private readonly timeoutPolicy: TimeoutPolicy;
  private readonly attempts: Counter<'transport' | 'result'>;
  private readonly attemptDuration: Histogram<'transport'>;
  private readonly transport: HttpTransport;

  constructor(private readonly options: HttpCallPolicyOptions) {
    this.transport = options.transport ?? sharedHttpTransport;
    this.retryPolicy = retry(
      handleWhen((error) => error instanceof AttemptFailure && error.retryInProcess),
      {
        // cockatiel counts retries, not attempts.
        maxAttempts: options.maxAttempts - 1,
        backoff: new EqualJitterBackoff({
          initialDelayMs: options.initialDelayMs,
          maxDelayMs: options.maxDelayMs,
          floorMs: (context) => {
            const failure = 'error' in context.result ? context.result.error : undefined;
            return failure instanceof AttemptFailure ? (failure.retryAfterMs ?? 0) : 0;
          },
        }),
      },
    );
    this.timeoutPolicy = timeout(options.timeoutMs, TimeoutStrategy.Aggressive);
    const registers = [options.registry];
    this.attempts = new Counter({
      name: 'wa_ingress_bird_attempts_total',
      help: 'HTTP attempts to Bird by transport and result (2xx, 3xx, 4xx, 408, 429, 5xx, timeout, network)',
      labelNames: ['transport', 'result'],
      registers,
    });
    this.attemptDuration = new Histogram({
      name: 'wa_ingress_bird_attempt_duration_seconds',
      help: 'Latency of one HTTP attempt to Bird',
      labelNames: ['transport'],
      buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30],
      registers,
    });
  }

  /** The parsed JSON answer (undefined when empty or not JSON); throws PermanentError or RetryableError. */
  async send(request: HttpRequest): Promise<unknown> {
    return (await this.call(request)).body;
  }

  /** As `send`, with the 2xx status Bird accepted with (the journal's `delivered` step shows it). */
  async call(request: HttpRequest): Promise<{ status: number; body: unknown }> {
    try {
      return await this.retryPolicy.execute(() => this.attempt(request), request.signal);
    } catch (error) {
      throw this.toGatewayError(error, request);
    }
  }

  private async attempt(request: HttpRequest): Promise<{ status: number; body: unknown }> {
    const endTimer = this.attemptDuration.startTimer({ transport: request.transport });
    try {
      // The transport never follows a redirect, so the secret in the headers goes nowhere else.
      const answer = await this.timeoutPolicy.execute(
        ({ signal }) => this.transport.exchange({ method: request.method, url: request.url, headers: request.headers, body: request.body, signal }),
        request.signal,
      );
      this.attempts.inc({ transport: request.transport, result: resultOfStatus(answer.status) });
      if (answer.status >= 200 && answer.status < 300) return { status: answer.status, body: parseJsonOrUndefined(answer.text) };
      throw this.failureOf(answer.status, answer.headers, answer.text);
    } catch (error) {
      if (error instanceof AttemptFailure) throw error;
      const timedOut = error instanceof TaskCancelledError && !request.signal?.aborted;
      const result = timedOut ? 'timeout' : 'network';
      this.attempts.inc({ transport: request.transport, result });
      throw new AttemptFailure(
        timedOut ? `Bird did not answer within ${this.options.timeoutMs} ms` : `Bird could not be reached: ${errorSummary(error)}`,
        result,
        true,
        undefined,
        undefined,
        !request.signal?.aborted,
        { cause: error },
      );
    } finally {
      endTimer();
    }
  }

  private failureOf(status: number, headers: IncomingHttpHeaders, text: string): AttemptFailure {
    const code = birdErrorCode(text);
    const detail = `Bird answered ${status}${code ? ` (${code})` : ''}`;
    const retryable = status === 408 || status === 429 || status >= 500;
    if (!retryable) return new AttemptFailure(detail, resultOfStatus(status), false, status);
    const retryAfterMs = parseRetryAfter(headerValue(headers, 'retry-after'), this.options.now());
    const inProcess = retryAfterMs === undefined || retryAfterMs <= this.options.maxRetryAfterMs;
    return new AttemptFailure(detail, resultOfStatus(status), true, status, retryAfterMs, inProcess);
  }

  private toGatewayError(error: unknown, request: HttpRequest): unknown {
    if (!(error instanceof AttemptFailure)) {
      if (request.signal?.aborted) return new RetryableError('bird_unavailable', 'The Bird call was cut short (shutdown)', { cause: error });
      return error;
    }
    const where = `${request.transport} ${request.method} ${new URL(request.url).host}`;
    if (!error.retryable) {
      return new PermanentError(
        `bird_rejected_${error.status ?? 'unknown'}`,
        `${error.message} to ${where}: the request is wrong or not allowed (check the line's Bird target and secret); not retried`,
        { cause: error },
      );
    }
    const reason = error.status === 429 ? 'bird_rate_limited' : 'bird_unavailable';
    const why = request.signal?.aborted
      ? 'cut short (shutdown)'
      : error.retryInProcess
        ? 'attempts exhausted'
        : `Retry-After ${error.retryAfterMs} ms is longer than we wait in-process`;
    return new RetryableError(reason, `${error.message} to ${where}: ${why}`, { cause: error, retryAfterMs: error.retryAfterMs });
  }
}

function resultOfStatus(status: number): string {
  if (status === 408 || status === 429) return String(status);
  return `${Math.floor(status / 100)}xx`;
}

export function errorSummary(error: unknown): string {
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
