import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { ErasureView } from '../../console/ui/contract';
import type { Line } from '../../lines/line';
import { contactKey } from '../../outbound/record';
import { canonicalContact, contactDigest, lastFour } from '../pseudonyms';

/**
 * Erasure of one contact on one line (GDPR Art. 17): what is asked, what is kept as its audit trail,
 * and what the API shows. Pure. The record never holds the number: only the lookup keys the steps
 * need (digests), computed once when the request is accepted, and the last four characters.
 */

export type ErasureStatus = ErasureView['status'];

/** Where a contact's data is found, without the number: every step works from these. */
export interface ErasureTarget {
  lineId: string;
  /** The line's phone number id: inbound payloads name the line by it (the erased marker is keyed by it). */
  phoneNumberId: string;
  contactDigest: string;
  /** The outbound records' byContact key (`<lineId>#<sha256(to)>`, src/outbound/record.ts). */
  outboundContactKey: string;
  /** What the record shows of the contact: its last four characters. */
  contactLastFour: string;
}

/** One batch a step was removing when the process stopped: redone, then counted, on resume. */
export interface ErasureBatch {
  step: string;
  ids: string[];
}

export interface ErasureRecord extends ErasureTarget {
  id: string;
  status: ErasureStatus;
  requestedAt: string;
  requestedBy: 'api' | 'console';
  updatedAt: string;
  completedAt?: string;
  /** Removed so far, per step. */
  counts: Record<string, number>;
  stepsDone: string[];
  batch?: ErasureBatch;
}

/** `DELETE /v1/lines/:lineId/contacts/:contact`: a wa_id (digits, an optional `+`) or a business-scoped user id. */
export const erasureContactSchema = z
  .string()
  .min(5, 'at least 5 characters')
  .max(63, 'at most 63 characters')
  .regex(/^\+?[A-Za-z0-9._-]+$/, 'a wa_id (digits) or a business-scoped user id')
  .refine((value) => canonicalContact(value).length >= 5, 'a wa_id (digits) or a business-scoped user id');

export function newErasureId(): string {
  return `er_${randomBytes(16).toString('base64url')}`;
}

export function looksLikeErasureId(value: string): boolean {
  return /^er_[A-Za-z0-9_-]{22}$/.test(value);
}

/** Everything an erasure needs to know about the contact, derived once from the number, which is then dropped. */
export function erasureTarget(line: Pick<Line, 'lineId' | 'phoneNumberId'>, contact: string): ErasureTarget {
  const canonical = canonicalContact(contact);
  return {
    lineId: line.lineId,
    phoneNumberId: line.phoneNumberId,
    contactDigest: contactDigest(canonical),
    outboundContactKey: contactKey(line.lineId, canonical),
    contactLastFour: lastFour(canonical),
  };
}

/** The API's and the console's JSON: one definition, in the console contract (src/console/ui/contract.ts). */
export type { ErasureView };

/** What the API and the console show: progress per step, and the counts once done. */
export function erasureView(record: ErasureRecord, stepNames: readonly string[]): ErasureView {
  const names = [...new Set([...stepNames, ...Object.keys(record.counts)])];
  const steps = names.map((step) => ({ step, done: record.stepsDone.includes(step), removed: record.counts[step] ?? 0 }));
  return {
    id: record.id,
    status: record.status,
    lineId: record.lineId,
    contact: record.contactLastFour,
    contactDigest: record.contactDigest,
    requestedAt: record.requestedAt,
    ...(record.completedAt ? { completedAt: record.completedAt } : {}),
    steps,
    ...(record.status === 'done' ? { removed: Object.fromEntries(steps.map((s) => [s.step, s.removed])) } : {}),
  };
}

/**
 * A parked message of an erased contact is not redriven when it was received before the erasure:
 * its payload would bring the person's data back. Without a receivedAt it cannot be told, so it is refused.
 */
export function refusedAtRedrive(erasedAt: string | undefined, receivedAt: string | undefined): boolean {
  if (!erasedAt) return false;
  if (!receivedAt) return true;
  const received = Date.parse(receivedAt);
  return !(received > Date.parse(erasedAt));
}
