/**
 * Every failure the gateway must tell apart, as one union of snake_case reasons. Each reason is
 * either retryable (the message goes back to the queue) or permanent (the event is parked in the
 * DLQ): the table below says which, and RetryableError / PermanentError only accept their own.
 * Reasons are short, stable and low-cardinality: they label metrics, logs and DLQ attributes.
 */
export const FAILURE_REASONS = {
  // Ingress → SQS
  sqs_timeout: 'retryable',
  sqs_entry_refused: 'retryable',
  s3_claim_check: 'retryable',
  // Claim check (worker side)
  claim_check_invalid: 'permanent',
  claim_check_foreign_bucket: 'permanent',
  claim_check_size_mismatch: 'permanent',
  claim_check_missing: 'permanent',
  claim_check_sha256_mismatch: 'permanent',
  claim_check_unavailable: 'retryable',
  claim_check_unconfigured: 'retryable',
  // The worker's own decisions
  payload_not_json: 'permanent',
  unrouted: 'permanent',
  misrouted: 'permanent',
  line_inactive: 'permanent',
  line_invalid: 'permanent',
  event_in_progress: 'retryable',
  dlq_unavailable: 'retryable',
  shutting_down: 'retryable',
  unexpected_error: 'retryable',
  // Dedupe store
  dedupe_unavailable: 'retryable',
  dedupe_rejected: 'permanent',
  dedupe_invalid_key: 'permanent',
  dedupe_lease_lost: 'retryable',
  dedupe_complete_failed: 'retryable',
  // Conversation state (src/conversation)
  contact_state_unavailable: 'retryable',
  contact_state_contended: 'retryable',
  contact_state_identity_unknown: 'retryable',
  // Line secrets
  secret_literal_refused: 'permanent',
  secret_env_missing: 'permanent',
  secret_env_not_allowed: 'permanent',
  secret_store_unconfigured: 'permanent',
  secret_empty: 'permanent',
  secret_store_unavailable: 'retryable',
  // Media (Graph → S3)
  media_no_token: 'permanent',
  media_token_rejected: 'permanent',
  media_expired: 'permanent',
  media_too_large: 'permanent',
  media_sha256_missing: 'permanent',
  media_rejected: 'permanent',
  media_host_not_allowed: 'permanent',
  media_rate_limited: 'retryable',
  media_unavailable: 'retryable',
  media_store_failed: 'retryable',
  media_sha256_mismatch: 'retryable',
  // Conversation turns (src/worker/turns)
  turn_buffer_unavailable: 'retryable',
  turn_timer_unavailable: 'retryable',
  // Bird
  bird_contact_unaddressable: 'permanent',
  bird_target_insecure: 'permanent',
  bird_rate_limited: 'retryable',
  bird_unavailable: 'retryable',
  bird_bad_response: 'retryable',
  bird_circuit_open: 'retryable',
  // Bird webhooks: reading the reply failed in a way an operator or a moment can fix (Bird retries for 8 h)
  bird_access_key_rejected: 'retryable',
  bird_message_not_found: 'retryable',
  bird_access_key_unresolved: 'retryable',
  bird_signing_key_unresolved: 'retryable',
  // Outbound (replies): acceptance
  invalid_send_body: 'permanent',
  idempotency_key_reused: 'permanent',
  outbound_unavailable: 'retryable',
  outbound_store_unavailable: 'retryable',
  outbound_store_race: 'retryable',
  outbound_store_rejected: 'permanent',
  // Outbound: the sender's DLQ reasons (Meta refused the reply for good, or it can never be sent)
  outbound_job_invalid: 'permanent',
  outbound_record_missing: 'permanent',
  graph_no_token: 'permanent',
  outside_customer_service_window: 'permanent',
  recipient_undeliverable: 'permanent',
  template_error: 'permanent',
  graph_rejected: 'permanent',
  // A resend was ambiguous too: Meta may hold it twice, or not at all. An operator resends or marks it sent.
  send_uncertain: 'permanent',
  // Erasure (src/privacy/erasure): a parked message of an erased contact is never redriven
  erased: 'permanent',
  erasure_unavailable: 'retryable',
} as const satisfies Record<string, 'retryable' | 'permanent'>;

type ReasonTable = typeof FAILURE_REASONS;
/** Bird refused the request with this HTTP status (4xx other than 408/429): not retried. */
export type BirdRejectedReason = `bird_rejected_${number | 'unknown'}`;
export type RetryableReason = { [R in keyof ReasonTable]: ReasonTable[R] extends 'retryable' ? R : never }[keyof ReasonTable];
/** Meta refused a reply for good with this `error.code` (the codes without a name of their own). */
export type GraphErrorReason = `graph_error_${number}`;
export type PermanentReason = { [R in keyof ReasonTable]: ReasonTable[R] extends 'permanent' ? R : never }[keyof ReasonTable] | BirdRejectedReason | GraphErrorReason;
export type FailureReason = RetryableReason | PermanentReason;

/** Media failures no redrive can fix: the event is delivered without its file, naming the reason, so the AI can ask for it again. */
export const UNFIXABLE_MEDIA_REASONS = ['media_too_large', 'media_expired', 'media_sha256_missing'] as const satisfies readonly PermanentReason[];
export type UnfixableMediaReason = (typeof UNFIXABLE_MEDIA_REASONS)[number];

export function isUnfixableMediaReason(reason: string): reason is UnfixableMediaReason {
  return (UNFIXABLE_MEDIA_REASONS as readonly string[]).includes(reason);
}

/** Is `value` a reason of the union (e.g. read back from a DLQ attribute)? */
export function isFailureReason(value: string): value is FailureReason {
  return Object.hasOwn(FAILURE_REASONS, value) || /^bird_rejected_(\d+|unknown)$/.test(value) || /^graph_error_\d+$/.test(value);
}

/**
 * Every failure the gateway must tell apart carries whether trying again can help.
 * Retryable: the message goes back to the queue. Permanent: the event is parked in the DLQ.
 */
export abstract class GatewayError extends Error {
  abstract readonly retryable: boolean;
  abstract readonly reason: FailureReason;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class RetryableError extends GatewayError {
  readonly retryable = true;
  constructor(
    readonly reason: RetryableReason,
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
    readonly reason: PermanentReason,
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

/** The reason of any error: its own for a GatewayError, `unexpected_error` for anything else. */
export function reasonOf(error: unknown): FailureReason {
  return error instanceof GatewayError ? error.reason : 'unexpected_error';
}
