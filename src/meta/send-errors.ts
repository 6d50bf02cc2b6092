import type { PermanentReason } from '../errors';

/**
 * What a send's outcome means, by Meta's `error.code` (the HTTP status is not reliable for this;
 * ARCHITECTURE.md §2 "Meta outbound"). Pure.
 *
 * - `rate_limited`: Meta refused it for throughput (130429, 80007, 4): not sent; retry with backoff, slow the line.
 * - `pair_limited`: 131056, too many to one recipient: not sent; retry that recipient after ≥ 6 s.
 * - `token`: 190, 10, 200: not sent; retry later and alert (the line's token or its permissions).
 * - `permanent`: 131047 (outside the 24 h window), 131026, 131051, 131053, 131008, 131009, 100,
 *   132000–132016, and any other 4xx we do not know: sending it again cannot help.
 * - `ambiguous`: 131000, 131016, 2, any other 5xx: Meta may have accepted it; resolve by status webhooks.
 */
export type SendErrorClass = 'rate_limited' | 'pair_limited' | 'token' | 'permanent' | 'ambiguous';

const RATE = new Set([130429, 80007, 4]);
const TOKEN = new Set([190, 10, 200]);
const PAIR = 131056;
const TRANSIENT = new Set([131000, 131016, 2]);
const PERMANENT = new Set([131047, 131026, 131051, 131053, 131008, 131009, 100]);

/** Meta's pair rate limit: about one message every 6 s to the same person. */
export const PAIR_LIMIT_RETRY_SECONDS = 6;

export function classifySendError(code: number | undefined, httpStatus: number): SendErrorClass {
  if (code !== undefined) {
    if (RATE.has(code)) return 'rate_limited';
    if (code === PAIR) return 'pair_limited';
    if (TOKEN.has(code)) return 'token';
    if (PERMANENT.has(code) || (code >= 132000 && code <= 132016)) return 'permanent';
    if (TRANSIENT.has(code)) return 'ambiguous';
  }
  if (httpStatus >= 500 || httpStatus === 0) return 'ambiguous';
  if (httpStatus === 429) return 'rate_limited';
  if (httpStatus === 401 || httpStatus === 403) return 'token';
  return 'permanent';
}

/** The DLQ reason of a permanent send failure: a stable snake_case word for the codes operators act on. */
export function permanentReason(code: number | undefined): PermanentReason {
  if (code === 131047) return 'outside_customer_service_window';
  if (code === 131026) return 'recipient_undeliverable';
  if (code !== undefined && code >= 132000 && code <= 132016) return 'template_error';
  return code === undefined ? 'graph_rejected' : `graph_error_${code}`;
}

/** Meta's error body: `{error: {message, type, code, error_subcode?, error_data?, fbtrace_id}}`. */
export interface GraphErrorBody {
  message?: string;
  type?: string;
  code?: number;
  error_subcode?: number;
  error_user_title?: string;
  error_data?: { details?: string };
  fbtrace_id?: string;
}

export function parseGraphError(body: unknown): GraphErrorBody | undefined {
  const error = (body as { error?: unknown } | null)?.error;
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as Record<string, unknown>;
  return {
    message: typeof e.message === 'string' ? e.message : undefined,
    type: typeof e.type === 'string' ? e.type : undefined,
    code: typeof e.code === 'number' ? e.code : undefined,
    error_subcode: typeof e.error_subcode === 'number' ? e.error_subcode : undefined,
    error_user_title: typeof e.error_user_title === 'string' ? e.error_user_title : undefined,
    fbtrace_id: typeof e.fbtrace_id === 'string' ? e.fbtrace_id : undefined,
  };
}

/** A short title for the record and for Bird: Meta's user title, else its message, trimmed. */
export function errorTitle(error: GraphErrorBody | undefined, fallback: string): string {
  return (error?.error_user_title ?? error?.message ?? fallback).slice(0, 200);
}
