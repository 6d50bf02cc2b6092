import { createHash } from 'node:crypto';
import type { OutboundBody, OutboundSource, OutboundStatus } from './job';

export type { OutboundStatus } from './job';

/**
 * The outbound record: one per reply, keyed by its outbound id, which is derived from line +
 * idempotency key (so "same key" and "same id" are one thing, and the id alone finds the record:
 * the status API, and `biz_opaque_callback_data` echoed in Meta's statuses).
 *
 * `uncertain`: Meta may have accepted the send (a timeout, a connection lost after the request was
 * written, a 5xx). With a `retryAt` it waits for a status before its one resend; without one it
 * waits for an operator (resend, or mark as sent) or a late status.
 */
export type OutboundState = OutboundStatus;

/** Writes move a record only to a higher rank: a late `sent` never overwrites `read`; failed is terminal. */
export const STATE_RANK: Record<OutboundState, number> = { queued: 0, sending: 1, uncertain: 1, sent: 2, delivered: 3, read: 4, failed: 5, suppressed: 5 };

/**
 * One step of a reply's journey, appended by the same write that changes the state (no extra
 * writes). `detail` never holds a whole phone number or a secret.
 */
export interface JourneyStep {
  at: string;
  /** `operator`: an operator's resend or mark-as-sent of an uncertain reply (who and why in `detail`). */
  step: 'queued' | 'sending' | 'sent' | 'delivered' | 'read' | 'failed' | 'uncertain' | 'retry' | 'operator' | 'suppressed';
  detail?: string;
}

/** Why a reply was not sent though nothing failed: the contact was paused (src/conversation/reply-policy.ts). */
export type SuppressedReason = 'paused';

/** Meta's `pricing` of a status (statuses webhook reference): what the send is billed as. */
export interface OutboundPricing {
  billable?: boolean;
  /** `PMP` (per message) or `CBP` (per conversation, before July 2025). */
  pricing_model?: string;
  /** `marketing`, `utility`, `authentication`, `service`, … */
  category?: string;
  /** PMP: `regular`, `free_customer_service`, `free_entry_point`. */
  type?: string;
}

export interface OutboundError {
  code?: number;
  title: string;
}

export interface OutboundRecord {
  /** Partition key: the outbound id. */
  pk: string;
  id: string;
  lineId: string;
  idempotencyKey: string;
  /** The recipient, whole: the status API returns it. Never indexed. */
  to: string;
  /**
   * `<lineId>#<sha256(to) prefix>`: the lookup key of a contact's replies (index byContact); a
   * listed index never shows the number itself.
   */
  contactKey: string;
  /** sha256 of the canonical `{to, body}`: the same key with a different body is refused. */
  bodyHash: string;
  /** The Meta message type (text, image, template…). */
  type: string;
  /**
   * The validated send body (without `to`), as JSON: what the outbox sweeper enqueues again when
   * the job never reached the queue. At most MAX_SEND_BODY_BYTES with `to`. Records written before
   * the outbox have none.
   */
  sendBody?: string;
  /**
   * Present only while the record is pending (written, not yet claimed): the partition key of the
   * sparse byPending index the outbox sweeper queries. The claim removes it.
   */
  outboxShard?: string;
  /** The byPending sort key: the creation time, moved forward each time a sweep enqueues the job again. */
  outboxAt?: string;
  source: OutboundSource;
  /** A Flow reply: when its inbound event was received; `sent` minus this is received_to_reply_sent. */
  inboundReceivedAt?: string;
  status: OutboundState;
  rank: number;
  wamid?: string;
  error?: OutboundError;
  /** With `status: suppressed`. */
  suppressedReason?: SuppressedReason;
  /** The latest `pricing` Meta sent in a status of this reply. */
  pricing?: OutboundPricing;
  /** The status that first carried a pricing: the one write that counted the reply as billed. */
  pricedBy?: string;
  /** ISO 8601; `createdAt` is the sort key of the byLine and byContact indexes. */
  createdAt: string;
  updatedAt: string;
  /** Sends attempted (claims taken). The last claim's number is its fencing token: its writes carry it. */
  attempts: number;
  /** Sends whose outcome was ambiguous; past OUTBOUND_MAX_AMBIGUOUS_RESENDS + 1 the reply waits for an operator. */
  ambiguousSends?: number;
  /**
   * Epoch ms. While `sending` or `uncertain`: the record may be claimed again (and resent) only
   * after this, when no status webhook has settled it in the meantime. An `uncertain` record
   * without it is parked for an operator and never claimed.
   */
  retryAt?: number;
  journey: JourneyStep[];
  /** TTL (epoch seconds). */
  expiresAt: number;
}

const ID_PREFIX = 'ob_';

/** The send API's body limit: a reply's `{to, body}` larger than this is refused at accept (DynamoDB's item limit is 400 KB). */
export const MAX_SEND_BODY_BYTES = 64 * 1024;

/**
 * Pending records spread over this many partitions of the byPending index, so a busy gateway's
 * creates and claims never concentrate on one partition. Changing it strands pending records in
 * shards the sweeper no longer reads: it is a constant, not a setting.
 */
export const OUTBOX_SHARDS = 16;

/** The byPending partition of an outbound id: stable, so the sweeper finds it where the create put it. */
export function outboxShardOf(id: string): string {
  const n = createHash('sha256').update(id).digest().readUInt16BE(0) % OUTBOX_SHARDS;
  return `p${String(n).padStart(2, '0')}`;
}

export function allOutboxShards(): string[] {
  return Array.from({ length: OUTBOX_SHARDS }, (_, n) => `p${String(n).padStart(2, '0')}`);
}

/** Deterministic: the same line and idempotency key always give the same id. */
export function outboundId(lineId: string, idempotencyKey: string): string {
  return ID_PREFIX + createHash('sha256').update(`${lineId}\u0000${idempotencyKey}`).digest('base64url').slice(0, 32);
}

export function looksLikeOutboundId(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(ID_PREFIX) && value.length === ID_PREFIX.length + 32;
}

/** JSON with object keys sorted, so two equal bodies hash alike whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function bodyHash(to: string, body: OutboundBody): string {
  return createHash('sha256').update(canonicalJson({ to, body })).digest('hex');
}

export function contactKey(lineId: string, to: string): string {
  return `${lineId}#${createHash('sha256').update(to.replace(/^\+/, '')).digest('hex').slice(0, 24)}`;
}

/** What the API and the console show: the state itself (`uncertain` included, since issue 13). */
export function apiStatus(state: OutboundState): OutboundStatus {
  return state;
}

/** An uncertain reply whose resends are spent: only an operator (or a late status) moves it. */
export function awaitsOperator(record: Pick<OutboundRecord, 'status' | 'retryAt'>): boolean {
  return record.status === 'uncertain' && record.retryAt === undefined;
}

/** What `GET /v1/lines/:lineId/messages/:id` answers. */
export interface OutboundView {
  id: string;
  status: OutboundStatus;
  to: string;
  /** The digest of Meta's wamid for the send (the wamid itself is not stored: it carries the recipient's number). */
  wamidDigest?: string;
  error?: OutboundError;
  /** With `status: suppressed`: why the reply was not sent (`paused`). */
  reason?: SuppressedReason;
  pricing?: OutboundPricing;
  createdAt: string;
  updatedAt: string;
}

export function toView(record: OutboundRecord): OutboundView {
  return {
    id: record.id,
    status: apiStatus(record.status),
    to: record.to,
    ...(record.wamid ? { wamidDigest: record.wamid } : {}),
    ...(record.error ? { error: record.error } : {}),
    ...(record.suppressedReason ? { reason: record.suppressedReason } : {}),
    ...(record.pricing ? { pricing: record.pricing } : {}),
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  };
}
