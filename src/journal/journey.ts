import type { InboundOutcome, JourneyStep, MinuteBucket } from '../console/ui/contract';
import type { WhatsAppEvent } from '../meta/event';
import { contactDigest, lastFour, wamidDigest } from '../privacy/pseudonyms';
import { storedEvent, type StoredEvent } from './stored-event';

/**
 * The journal: what happened to each inbound event (and, in src/outbound, to each reply), as a list
 * of timestamped steps riding on the record the pipeline already writes. Pure functions only; the
 * store adapters put these values into their own UpdateItems.
 */

export const INBOUND_STEPS = ['received', 'claimed', 'media_stored', 'delivered', 'completed', 'duplicate', 'retried', 'parked', 'redriven', 'not_forwarded'] as const;
export type InboundStep = (typeof INBOUND_STEPS)[number];

export const OUTBOUND_STEPS = ['queued', 'sending', 'sent', 'delivered', 'read', 'failed'] as const;
export type OutboundStep = (typeof OUTBOUND_STEPS)[number];

export type { InboundOutcome, JourneyStep, MinuteBucket } from '../console/ui/contract';

/** What the live tail receives for every step written (SSE `event: journal`). */
export interface JournalNotice {
  /** The event's handle (eventHandle of its key), or a reply's outbound id: never a key that carries a wamid. */
  handle: string;
  lineId: string;
  step: string;
  at: string;
}

/** The journal's line for events no line took (unrouted): not a valid lineId, so never a real line's. */
export const UNROUTED_LINE = '~unrouted';

/** A journey grows by at most this many steps; past it, steps are counted (duplicates, retries) but not listed. */
export const MAX_JOURNEY_STEPS = 40;
/** The normalised event stored for the detail view, as JSON; larger ones are cut (the DLQ keeps the payload). */
export const MAX_STORED_EVENT_BYTES = 16 * 1024;

/** A step at `at` (now); detail values that are undefined or empty are left out. */
export function step(name: string, detail?: Record<string, string | number | boolean | undefined>, at: Date = new Date()): JourneyStep {
  const clean = detail && (Object.fromEntries(Object.entries(detail).filter(([, v]) => v !== undefined && v !== '')) as JourneyStep['detail']);
  return clean && Object.keys(clean).length > 0 ? { at: at.toISOString(), step: name, detail: clean } : { at: at.toISOString(), step: name };
}

/** A contact's index value: a digest, so the index finds a contact's events without the number being an index key. */
export const contactHash = contactDigest;

/** The message id an inbound event is known by at Meta (messages: its wamid; statuses: the wamid they are about). */
export function eventWamid(event: WhatsAppEvent): string | undefined {
  return event.message?.id ?? event.status?.id;
}

/** The person on the other side: the sender of a message, the recipient of a status. */
export function eventContact(event: WhatsAppEvent): string | undefined {
  return event.contact?.userKey ?? event.contact?.waId ?? event.status?.recipientId;
}

/** The message type, the status value, or the change's field: what a list shows in its "type" column. */
export function eventType(event: WhatsAppEvent): string {
  return event.message?.type ?? event.status?.status ?? event.field;
}

/** The attributes the journal indexes and lists read; written once, with the claim. Nothing here is a number or a wamid in clear. */
export interface JournalFacts {
  lineId: string;
  kind: string;
  type: string;
  receivedAt: string;
  /** wamidDigest of the event's wamid: the byWamid index finds it by hashing the wamid an operator types. */
  wamid?: string;
  contactHash?: string;
  /** The contact's last 4: what lists show. */
  contact?: string;
  /** The event's projection (src/journal/stored-event.ts) as JSON, for the detail view. */
  event: string;
  /** Meta's timestamp of the event (ISO), for the delivery latency: written with the claim, no write of its own. */
  metaAt?: string;
}

export function journalFacts(event: WhatsAppEvent, lineId: string, receivedAt: string): JournalFacts {
  const contact = eventContact(event);
  const wamid = eventWamid(event);
  const stored = storedEvent(event);
  let json = JSON.stringify(stored);
  if (Buffer.byteLength(json, 'utf8') > MAX_STORED_EVENT_BYTES) json = JSON.stringify(withTextCut(stored));
  return {
    lineId,
    kind: event.kind,
    type: eventType(event),
    receivedAt: new Date(receivedAt).toISOString(),
    wamid: wamid ? wamidDigest(wamid) : undefined,
    contactHash: contact ? contactHash(contact) : undefined,
    contact: contact ? lastFour(contact) : undefined,
    event: json,
    metaAt: metaTime(event.timestamp),
  };
}

const CUT_TEXT = '[cut: see the DLQ or Bird for the full text]';

/** Texts are what can make a stored event large (a turn holds several): cut them, keep the rest. */
function withTextCut(stored: StoredEvent): StoredEvent {
  const cut = (message: StoredEvent['message']) => message && { ...message, ...(message.text ? { text: CUT_TEXT } : {}) };
  return {
    ...stored,
    message: cut(stored.message),
    turn: stored.turn && { ...stored.turn, messages: stored.turn.messages.map((m) => ({ ...m, message: cut(m.message) })) },
  };
}

/** Meta's timestamp (whole seconds since the epoch, as a string) as ISO; undefined when absent or not a time. */
export function metaTime(timestamp: string | undefined): string | undefined {
  const seconds = Number(timestamp);
  return timestamp !== undefined && timestamp !== '' && Number.isFinite(seconds) && seconds > 0 ? new Date(seconds * 1000).toISOString() : undefined;
}

/** The outcome a list shows, from the record's state and counters. */
export function inboundOutcome(record: { status?: string; retries?: number; journey?: JourneyStep[] }): InboundOutcome {
  // A status the line does not forward (forwardStatuses) is done without Bird: recorded, not delivered.
  if (record.status === 'RECORDED') return 'not_forwarded';
  // A redriven status the line does not forward ends COMPLETED without Bird: its journey says so (the detail view reads it).
  if (record.status === 'COMPLETED') return record.journey?.some((s) => s.step === 'not_forwarded') ? 'not_forwarded' : 'delivered';
  if (record.status === 'PARKED') return 'parked';
  const last = record.journey?.at(-1)?.step;
  return last === 'retried' ? 'retrying' : 'in_progress';
}

/** A stored `wamid` attribute as views show it: its digest (a record written before digests were stored held the wamid itself). */
export function shownWamid(stored: unknown): string | undefined {
  if (typeof stored !== 'string' || stored === '') return undefined;
  return stored.startsWith('wd_') ? stored : wamidDigest(stored);
}

/** Events per minute by outcome over the last `minutes`, oldest first, every minute present (zeros included). */
export function perMinute(items: { at: string; outcome: string }[], now: Date, minutes: number): MinuteBucket[] {
  const end = Math.floor(now.getTime() / 60_000) * 60_000;
  const start = end - (minutes - 1) * 60_000;
  const buckets: MinuteBucket[] = [];
  for (let t = start; t <= end; t += 60_000) buckets.push({ minute: new Date(t).toISOString(), counts: {} });
  for (const item of items) {
    const t = Math.floor(Date.parse(item.at) / 60_000) * 60_000;
    if (!(t >= start && t <= end)) continue;
    const bucket = buckets[(t - start) / 60_000]!;
    bucket.counts[item.outcome] = (bucket.counts[item.outcome] ?? 0) + 1;
  }
  return buckets;
}

/**
 * The stored event as the detail view shows it. Records written before the projection existed
 * held the normalised event itself: they are projected on the way out, so no view shows them whole.
 */
export function displayEvent(stored: unknown): unknown {
  if (!stored || typeof stored !== 'object') return stored;
  return 'handle' in stored ? stored : storedEvent(stored);
}

/** The `received` step, derived from what the first claim stored: it costs no list entry. */
export function receivedStep(record: { receivedAt?: unknown; requestId?: unknown; bytes?: unknown; lineId?: unknown }): JourneyStep | undefined {
  if (typeof record.receivedAt !== 'string') return undefined;
  const detail: JourneyStep['detail'] = {};
  if (typeof record.requestId === 'string') detail.requestId = record.requestId;
  if (typeof record.bytes === 'number') detail.bytes = record.bytes;
  if (typeof record.lineId === 'string') detail.line = record.lineId;
  return { at: record.receivedAt, step: 'received', detail };
}
