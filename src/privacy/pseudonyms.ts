import { createHash } from 'node:crypto';

/**
 * What the gateway may store or show in place of a person's identifiers. A wamid is base64 of a
 * structure that begins with the sender's number, and an event key carries a wamid, so none of
 * them is stored or shown in clear: each has a stable one-way digest, and a lookup hashes what the
 * operator typed the same way. Digests are domain-separated, so one kind never matches another.
 */

function digest(domain: string, value: string, length: number): string {
  return createHash('sha256').update(`wa-ingress/${domain}/${value}`, 'utf8').digest('base64url').slice(0, length);
}

/** A person's id (wa_id or BSUID) in the canonical form its digest is taken of: `+`, spaces and dashes dropped. */
export function canonicalContact(contact: string): string {
  return contact.replace(/[^0-9A-Za-z.]/g, '');
}

/** The console's and the stores' name for an event: opaque, stable, the same for every process. */
export function eventHandle(eventKey: string): string {
  return `ev_${digest('event', eventKey, 32)}`;
}

export function looksLikeEventHandle(value: string): boolean {
  return /^ev_[A-Za-z0-9_-]{32}$/.test(value);
}

/** A wamid's stored digest: finds the event or reply a wamid names without storing the wamid. */
export function wamidDigest(wamid: string): string {
  return `wd_${digest('wamid', wamid, 32)}`;
}

/**
 * A contact's stored digest (per deployment, not per line: the line is stored beside it). Hex, in
 * the form the journal's byContact index has always held, so existing records stay findable.
 */
export function contactDigest(contact: string): string {
  return createHash('sha256').update(`wa-ingress/contact/${canonicalContact(contact)}`, 'utf8').digest('hex').slice(0, 32);
}

/** What a stored view shows of a number or a BSUID: its last 4 characters only. */
export function lastFour(contact: string): string {
  const canonical = canonicalContact(contact);
  return canonical.length <= 4 ? '…' : `…${canonical.slice(-4)}`;
}
