import { createHash } from 'node:crypto';
import type { EventKind, WhatsAppEvent } from './event';

/**
 * Dedupe and idempotency keys. Meta delivers at least once and retries for up to 7 days, so the
 * same event must always get the same key, whichever retry it arrives in.
 */

/** An inbound message: wamids are unique per business number. */
export function messageKey(phoneNumberId: string, wamid: string): string {
  return `msg#${phoneNumberId}#${wamid}`;
}

/**
 * A status update: one message passes through sent, delivered, read…, each its own event. In a
 * group every member sends their own receipt for the same wamid, so the member is part of the key,
 * as a short hash (the member id may be a phone number, and keys travel to logs and the DLQ).
 */
export function statusKey(wamid: string, status: string, participant?: string): string {
  const base = `status#${wamid}#${status}`;
  return participant === undefined ? base : `${base}#p:${createHash('sha256').update(participant, 'utf8').digest('hex').slice(0, 16)}`;
}

/** What a content hash covers. */
export interface ContentKeyParts {
  field: string;
  wabaId?: string;
  phoneNumberId?: string;
  /**
   * Part of the hash because account events have nothing else that tells a repeat from a retry:
   * a template approved, paused and approved again sends the same `value` twice, and only
   * `entry.time` differs. A retry carries the same body, so the same time.
   */
  timestamp?: string;
  raw: unknown;
}

/**
 * `<kind>#sha256:<hex>` over the canonical JSON of the parts, for events with no id of their
 * own (errors, account events, unknown items, messages lacking an id or a phone_number_id).
 */
export function contentKey(kind: EventKind, parts: ContentKeyParts): string {
  const canonical = canonicalJson({
    field: parts.field,
    wabaId: parts.wabaId,
    phoneNumberId: parts.phoneNumberId,
    timestamp: parts.timestamp,
    raw: parts.raw,
  });
  return `${kind}#sha256:${createHash('sha256').update(canonical, 'utf8').digest('hex')}`;
}

/**
 * The key of a Meta error notification (`value.errors`) as delivered: its content hash plus the
 * ingress request that carried it. Meta sends the same error again days later with the same body,
 * and each is news for Bird; only SQS's redeliveries of one request (same requestId) are repeats.
 * Meta's own retries of a POST the ingress did not acknowledge get a new requestId: an error is
 * then delivered twice, which is harmless, where dropping a real repeat is not.
 */
export function errorEventKey(contentKey: string, request: string): string {
  return `${contentKey}#req:${request}`;
}

/**
 * The key of an event, chosen by the ids it carries. A message keeps its `msg#` key even when its
 * type is unknown to us (kind `unknown`): otherwise a deploy that learns the type while Meta is
 * still retrying would key the same message twice and deliver it twice.
 */
export function eventKey(event: Omit<WhatsAppEvent, 'key'>): string {
  if (event.message?.id && event.phoneNumberId) {
    return messageKey(event.phoneNumberId, event.message.id);
  }
  if (event.kind === 'status' && event.status?.id && event.status.status) {
    return statusKey(event.status.id, event.status.status, event.status.participant);
  }
  return contentKey(event.kind, {
    field: event.field,
    wabaId: event.wabaId,
    phoneNumberId: event.phoneNumberId,
    timestamp: event.timestamp,
    raw: event.raw,
  });
}

/**
 * JSON with object keys sorted at every depth, so that the same content always serialises the
 * same way regardless of the key order Meta (or a retry) happened to use. Array order is kept:
 * it is meaningful. Follows JSON.stringify for what JSON cannot hold (undefined, functions and
 * symbols are left out of objects and become null in arrays; NaN and Infinity become null);
 * a bigint becomes the string "<digits>n" and a cycle the string "[Circular]", so that any
 * in-memory value has a key instead of throwing.
 */
export function canonicalJson(value: unknown): string {
  return serialise(value, new Set()) ?? 'null';
}

function serialise(value: unknown, ancestors: Set<object>): string | undefined {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return JSON.stringify(`${value}n`);
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (value === null) return 'null';
  const object = value as object;
  if (ancestors.has(object)) return '"[Circular]"';
  ancestors.add(object);
  try {
    if (Array.isArray(object)) {
      const items: string[] = [];
      // An index loop, not map: map skips holes of sparse arrays and would join them as ''.
      for (let i = 0; i < object.length; i++) items.push(serialise(object[i], ancestors) ?? 'null');
      return `[${items.join(',')}]`;
    }
    const members: string[] = [];
    for (const name of Object.keys(object).sort()) {
      const member = serialise((object as Record<string, unknown>)[name], ancestors);
      if (member !== undefined) members.push(`${JSON.stringify(name)}:${member}`);
    }
    return `{${members.join(',')}}`;
  } finally {
    ancestors.delete(object);
  }
}
