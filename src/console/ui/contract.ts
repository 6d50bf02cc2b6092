/**
 * The console API's JSON, as the server writes it and the page reads it: one definition for both.
 *
 * Both compilations include this file (tsconfig.json lists it in `files`; the page's
 * src/console/ui/tsconfig.json takes every file here), and the page's has no Node types. So this
 * file imports nothing and declares only types: anything Node in it fails `npm run typecheck`.
 */

/** Where an inbound event stands, from its dedupe record. */
export type InboundOutcome = 'delivered' | 'not_forwarded' | 'parked' | 'in_progress' | 'retrying';

/** One step of a journey. `detail` is short and never holds message text, a secret or a whole phone number. */
export interface JourneyStep {
  /** ISO 8601 with milliseconds. */
  at: string;
  step: string;
  detail?: Record<string, string | number | boolean>;
}

/** A page of a list; `cursor` fetches the next one. */
export interface Page<T> {
  items: T[];
  cursor?: string;
}

/** GET lines: one line with its last hour. The display number is masked. */
export interface LineSummary {
  lineId: string;
  active: boolean;
  transport: string;
  /** Which reply outcomes reach the line's flow (the line's forwardStatuses). */
  forwardStatuses: string;
  displayPhoneNumber?: string;
  lastEventAt: string | null;
  lastHour: { delivered: number; duplicate: number; retried: number; parked: number; sent: number; failed: number };
  /** The hour had more events than were read: the counts are a floor. */
  truncated: boolean;
  /** Meta's side of the line (src/watch): empty when nothing is wrong. */
  problems: LineProblemView[];
  /** Over the last hour (a sample of the newest events; see the README). */
  latency: { metaToBird: LatencyFigures; receivedToReplySent: LatencyFigures };
}

/** Percentiles of a delivery stage; nulls when the hour had no sample. */
export interface LatencyFigures {
  samples: number;
  p50Ms: number | null;
  p95Ms: number | null;
}

/** A stored problem of a line, with what the operator should do about it. */
export interface LineProblemView {
  problem: string;
  /** ISO time it was first seen. */
  since: string;
  detail?: string;
  todo: string;
}

/** GET stats: events per minute by outcome. */
export interface MinuteBucket {
  /** ISO minute start. */
  minute: string;
  counts: Record<string, number>;
}

/** GET events: one row of the events list: no message text, no number and no wamid (the contact's last 4, the wamid's digest). */
export interface EventSummary {
  /** The event's opaque name (eventHandle of its key): what the detail URL and the live tail use. */
  handle: string;
  lineId: string;
  kind: string;
  type: string;
  outcome: InboundOutcome;
  receivedAt: string;
  updatedAt?: string;
  reason?: string;
  contact?: string;
  /** wamidDigest of the event's wamid. */
  wamid?: string;
  duplicates: number;
  retries: number;
}

/** The journal's detail of one event: the journey and the stored event (its projection, text included). */
export interface EventDetail extends EventSummary {
  status: string;
  attempts?: number;
  journey: JourneyStep[];
  event?: unknown;
}

/** GET events/:handle: the detail, and its stored media's download link when there is one. */
export interface EventDetailView extends EventDetail {
  media?: { type?: string; size?: number; href: string };
}

/** GET outbound: one reply: the recipient masked, never the message body. */
export interface OutboundSummary {
  id: string;
  lineId: string;
  to: string;
  type: string;
  source: string;
  status: string;
  /** wamidDigest of the send's wamid. */
  wamid?: string;
  error?: { code?: number; title: string };
  attempts: number;
  createdAt: string;
  updatedAt: string;
}

/** GET outbound/:id. */
export interface OutboundDetail extends OutboundSummary {
  journey: { at: string; step: string; detail?: string }[];
  /** Parked `send_uncertain`: its resends were ambiguous; an operator resends or marks it sent. */
  awaitsOperator: boolean;
}

/** POST erasures: accepted (202); the job runs in the worker. */
export interface ErasureAccepted {
  id: string;
  status: ErasureView['status'];
}

/**
 * GET erasures/:id (and the send API's GET …/erasures/:id): progress per step, the counts once done.
 * `contact` is the last four characters only; `contactDigest` is the pseudonym the stores are keyed by.
 */
export interface ErasureView {
  id: string;
  status: 'queued' | 'running' | 'done';
  lineId: string;
  contact: string;
  contactDigest: string;
  requestedAt: string;
  completedAt?: string;
  steps: { step: string; done: boolean; removed: number }[];
  /** Once done: what was removed, per store. */
  removed?: Record<string, number>;
}

/** GET dlq: what the page may see of a parked message: never its body (message text, phone numbers), nor the event key (it carries a wamid). */
export interface DlqSummary {
  id: string;
  reason: string;
  /** An inbound event's handle, or a reply's outbound id (opaque already); null for a whole message. */
  handle: string | null;
  lineId: string | null;
  receivedAt: string | null;
  parkedAt: string | null;
  receiveCount: number;
  bodyBytes: number;
}

/** GET events/:handle/contact: the conversation state of the contact an event names (no id in clear). */
export interface ContactPanelView {
  contactId: string;
  windowOpenUntil: string | null;
  /** A pause in force now, or null. `until` null: until Meta gives control back (meta_handover). */
  paused: { until: string | null; by: string } | null;
}

/** GET billable: replies Meta priced billable since `since` (the UTC day), per line and pricing category. */
export interface BillableView {
  since: string;
  rows: Array<{ lineId: string; category: string; count: number }>;
}
