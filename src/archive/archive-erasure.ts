import type { WhatsAppEvent } from '../meta/event';
import { envelopeToEvents } from '../meta/envelope';
import { contactDigest } from '../privacy/pseudonyms';
import type { ArchiveObjects } from './archive-objects';
import { ARCHIVE_PREFIX, bodyBytes, contactsOf, hourPrefixes, mayHoldDigest, type ArchiveRecord } from './archive-record';

export interface ArchiveErasureRequest {
  /** The line's phone_number_id: only payloads to this number are erased. */
  phoneNumberId: string;
  /** The contact's digest (src/privacy/pseudonyms.ts): an erasure never holds the number itself. */
  contactDigest: string;
  /** Receive-time range; absent: the whole archive. */
  from?: Date;
  to?: Date;
}

export interface ArchiveErasureCounts {
  /** Objects listed in the range. */
  objects: number;
  /** Objects downloaded because their contact index said they may hold the contact. */
  read: number;
  rewritten: number;
  deleted: number;
  recordsRemoved: number;
}

/**
 * The archive objects holding a payload that names the contact on that number, up to `limit`.
 * Objects are found cheaply: a LIST of the range's hour prefixes, then a HEAD per object for its
 * contact index (a Bloom filter in the metadata); only objects that may hold the contact are
 * downloaded, and only those that really do are returned (a false positive is never returned, so an
 * erasure that asks again after removing them finds nothing).
 */
export async function archiveObjectsHolding(
  objects: ArchiveObjects,
  request: ArchiveErasureRequest,
  limit = Number.POSITIVE_INFINITY,
  counts?: Pick<ArchiveErasureCounts, 'objects' | 'read'>,
): Promise<string[]> {
  const found: string[] = [];
  const prefixes = request.from || request.to ? hourPrefixes(request.from ?? new Date(0), request.to ?? new Date()) : [ARCHIVE_PREFIX];
  for (const prefix of prefixes) {
    for await (const { key } of objects.list(prefix)) {
      if (counts) counts.objects++;
      if (!mayHoldDigest(await objects.contactIndex(key), request.contactDigest)) continue;
      if (counts) counts.read++;
      if ((await objects.read(key)).some((record) => !record || namesContact(record, request))) found.push(key);
      if (found.length >= limit) return found;
    }
  }
  return found;
}

/**
 * Rewrites one object without the payloads naming the contact (deletes it when none remain). A
 * payload is signed as a whole, so it is removed whole, with whatever else it carried. Idempotent:
 * run again, it finds nothing to remove. The ingress never rewrites an object (each PUT has a key of
 * its own), so this cannot race with it.
 */
export async function removeContactFromObject(
  objects: ArchiveObjects,
  key: string,
  request: ArchiveErasureRequest,
): Promise<{ outcome: 'rewritten' | 'deleted' | 'unchanged'; removed: number }> {
  const kept: ArchiveRecord[] = [];
  const keptContacts: string[] = [];
  let removed = 0;
  for (const record of await objects.read(key)) {
    // A line that is not a record cannot be told apart from a payload naming the contact: it goes too.
    if (record && !namesContact(record, request)) {
      kept.push(record);
      keptContacts.push(...contactsOf(eventsOf(record)));
    } else removed++;
  }
  if (removed === 0) return { outcome: 'unchanged', removed };
  if (kept.length === 0) {
    await objects.delete(key);
    return { outcome: 'deleted', removed };
  }
  await objects.rewrite(key, kept, keptContacts);
  return { outcome: 'rewritten', removed };
}

/** Every object of the range, as the erasure job's archive step does it in batches. */
export async function eraseContactFromArchive(objects: ArchiveObjects, request: ArchiveErasureRequest): Promise<ArchiveErasureCounts> {
  const counts: ArchiveErasureCounts = { objects: 0, read: 0, rewritten: 0, deleted: 0, recordsRemoved: 0 };
  for (const key of await archiveObjectsHolding(objects, request, Number.POSITIVE_INFINITY, counts)) {
    const { outcome, removed } = await removeContactFromObject(objects, key, request);
    if (outcome === 'unchanged') continue;
    counts[outcome]++;
    counts.recordsRemoved += removed;
  }
  return counts;
}

function namesContact(record: ArchiveRecord, request: ArchiveErasureRequest): boolean {
  const onNumber = eventsOf(record).filter((e) => e.phoneNumberId === request.phoneNumberId);
  return contactsOf(onNumber).some((c) => contactDigest(c) === request.contactDigest);
}

function eventsOf(record: ArchiveRecord): WhatsAppEvent[] {
  let payload: unknown;
  try {
    payload = JSON.parse(bodyBytes(record).toString('utf8'));
  } catch {
    return [];
  }
  return envelopeToEvents(payload);
}
