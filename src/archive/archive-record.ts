import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { WhatsAppEvent } from '../meta/event';
import { contactDigest } from '../privacy/pseudonyms';

/**
 * The archive's format, pure: one accepted webhook POST as one NDJSON line, the object keys that
 * hold them, and the small contact index each object carries in its metadata. No I/O, no clock.
 */

/** Every key the archive writes starts with this; infra/'s lifecycle rule and IAM grant are scoped to it. */
export const ARCHIVE_PREFIX = 'archive/';

/** What the ingress hands to the archive once SQS accepted a POST. */
export interface ArchiveEntry {
  receivedAt: string;
  requestId: string;
  /** The request path Meta called: `/webhooks/whatsapp` or `/webhooks/whatsapp/<lineId>`. */
  path: string;
  lineId?: string;
  /** X-Hub-Signature-256 as received. */
  signature: string;
  body: Buffer;
  /** The people the payload names (contactsOf), for the object's contact index; never written in clear. */
  contacts: readonly string[];
}

/** One NDJSON line. The body is its UTF-8 text when that is byte-exact, else base64. */
export interface ArchiveRecord {
  v: 1;
  receivedAt: string;
  requestId: string;
  path: string;
  lineId?: string;
  signature: string;
  body?: string;
  bodyBase64?: string;
}

export function toRecord(entry: ArchiveEntry): ArchiveRecord {
  const exact = isUtf8(entry.body);
  return {
    v: 1,
    receivedAt: entry.receivedAt,
    requestId: entry.requestId,
    path: entry.path,
    ...(entry.lineId ? { lineId: entry.lineId } : {}),
    signature: entry.signature,
    ...(exact ? { body: entry.body.toString('utf8') } : { bodyBase64: entry.body.toString('base64') }),
  };
}

/** The exact bytes Meta signed. */
export function bodyBytes(record: ArchiveRecord): Buffer {
  return record.bodyBase64 !== undefined ? Buffer.from(record.bodyBase64, 'base64') : Buffer.from(record.body ?? '', 'utf8');
}

/** The lines of an object's NDJSON; a line that is not a record is returned as `undefined` (counted by the reader). */
export function parseRecords(ndjson: string): (ArchiveRecord | undefined)[] {
  return ndjson
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => {
      try {
        const value = JSON.parse(line) as Partial<ArchiveRecord>;
        const ok = value && value.v === 1 && typeof value.receivedAt === 'string' && typeof value.signature === 'string' && typeof value.path === 'string';
        return ok ? (value as ArchiveRecord) : undefined;
      } catch {
        return undefined;
      }
    });
}

/** Every person a payload names (senders, contacts, status recipients, by wa_id or BSUID). */
export function contactsOf(events: readonly Pick<WhatsAppEvent, 'contact' | 'status'>[]): string[] {
  const found = new Set<string>();
  for (const event of events) {
    for (const id of [event.contact?.waId, event.contact?.userId, event.contact?.userKey, event.status?.recipientId, event.status?.participant]) {
      if (id) found.add(id);
    }
  }
  return [...found];
}

/**
 * The object key: `archive/<yyyy>/<mm>/<dd>/<hh>/<start>-<writer>-<seq>.ndjson.gz`, `start` being the
 * earliest receive time it holds (compact ISO, so keys sort by it) and `writer` the process's id.
 */
export function archiveKey(start: string, writer: string, seq: number): string {
  const t = new Date(start);
  const compact = t.toISOString().replace(/[-:.]/g, '');
  return `${hourPrefix(t)}${compact}-${writer}-${String(seq).padStart(6, '0')}.ndjson.gz`;
}

export function hourPrefix(t: Date): string {
  const iso = t.toISOString();
  return `${ARCHIVE_PREFIX}${iso.slice(0, 4)}/${iso.slice(5, 7)}/${iso.slice(8, 10)}/${iso.slice(11, 13)}/`;
}

/** The earliest receive time of an object, from its key (epoch ms), or undefined for a key the archive did not write. */
export function keyStart(key: string): number | undefined {
  const match = /\/(\d{8}T\d{9}Z)-[^/]+\.ndjson\.gz$/.exec(key);
  if (!match) return undefined;
  const s = match[1]!;
  return Date.parse(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}.${s.slice(15, 18)}Z`);
}

/** The hour prefixes from `from`'s hour (less one: an object is filed under its first record's hour) to `to`'s. */
export function hourPrefixes(from: Date, to: Date): string[] {
  const hour = 3_600_000;
  const prefixes: string[] = [];
  for (let t = Math.floor(from.getTime() / hour) * hour - hour; t <= to.getTime(); t += hour) prefixes.push(hourPrefix(new Date(t)));
  return prefixes;
}

/**
 * The object's contact index: a Bloom filter of the contact digests of every payload it holds, in
 * its S3 metadata, so erasure reads (HEAD) 1.4 KB per object and downloads only the objects that may
 * hold the contact. 8192 bits and 4 probes: under 1% false positives up to ~700 contacts an object,
 * ~2% at 1000; a false positive costs one needless download, never a missed erasure.
 */
export const CONTACT_INDEX_METADATA = 'contact-bloom';
const BLOOM_BITS = 8192;
const BLOOM_PROBES = 4;

function probes(digest: string): number[] {
  const h = createHash('sha256').update(digest).digest();
  return Array.from({ length: BLOOM_PROBES }, (_, i) => h.readUInt32BE(i * 4) % BLOOM_BITS);
}

export function contactIndex(contacts: Iterable<string>): string {
  const bits = Buffer.alloc(BLOOM_BITS / 8);
  for (const contact of contacts) for (const p of probes(contactDigest(contact))) bits[p >> 3]! |= 1 << (p & 7);
  return bits.toString('base64');
}

/** False only when the object certainly holds no payload naming `contact`; an absent or unreadable index says "maybe". */
export function mayHoldContact(index: string | undefined, contact: string): boolean {
  return mayHoldDigest(index, contactDigest(contact));
}

/** The same test by the contact's digest: an erasure knows the contact only by it. */
export function mayHoldDigest(index: string | undefined, digest: string): boolean {
  if (!index) return true;
  const bits = Buffer.from(index, 'base64');
  if (bits.length !== BLOOM_BITS / 8) return true;
  return probes(digest).every((p) => (bits[p >> 3]! & (1 << (p & 7))) !== 0);
}
