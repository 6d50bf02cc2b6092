/**
 * Every failure the gateway must tell apart carries whether trying again can help.
 * Retryable: the message goes back to the queue. Permanent: the event is parked in the DLQ.
 */
export abstract class GatewayError extends Error {
  abstract readonly retryable: boolean;
  /** Short, stable, low-cardinality reason used in metrics, logs and DLQ attributes. */
  abstract readonly reason: string;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class RetryableError extends GatewayError {
  readonly retryable = true;
  constructor(
    readonly reason: string,
    message: string,
    options?: { cause?: unknown; retryAfterMs?: number },
  ) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
  readonly retryAfterMs?: number;
}

export class PermanentError extends GatewayError {
  readonly retryable = false;
  constructor(
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Bad configuration found at start: the message names the variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function isRetryable(error: unknown): boolean {
  if (error instanceof GatewayError) return error.retryable;
  // Unknown errors (network resets, SDK throttling we did not wrap) are treated as transient:
  // retrying is safe because every side effect is idempotent, and the DLQ bounds the attempts.
  return true;
}
