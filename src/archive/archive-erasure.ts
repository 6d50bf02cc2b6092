import type { WhatsAppEvent } from '../meta/event';
import { envelopeToEvents } from '../meta/envelope';
import { canonicalContact } from '../privacy/pseudonyms';
import type { ArchiveObjects } from './archive-objects';
import { ARCHIVE_PREFIX, bodyBytes, contactsOf, hourPrefixes, mayHoldContact, type ArchiveRecord } from './archive-record';

export interface ArchiveErasureRequest {
  /** The line's phone_number_id: only payloads to this number are erased. */
  phoneNumberId: string;
  /** wa_id or BSUID (`+`, spaces and dashes ignored). */
  contact: string;
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
 * The erasure job's archive step: every archive object holding a payload that names the contact
 * on that number is rewritten without those payloads (deleted when none remain). A payload is
 * signed as a whole, so it is removed whole, with whatever else it carried. Objects are found
 * cheaply: a LIST of the range's hour prefixes, then a HEAD per object for its contact index (a
 * Bloom filter in the metadata); only objects that may hold the contact are downloaded.
 * Idempotent: run again, it finds nothing to remove. The ingress never rewrites an object (each
 * PUT has a key of its own), so this cannot race with it.
 */
export async function eraseContactFromArchive(objects: ArchiveObjects, request: ArchiveErasureRequest): Promise<ArchiveErasureCounts> {
  const counts: ArchiveErasureCounts = { objects: 0, read: 0, rewritten: 0, deleted: 0, recordsRemoved: 0 };
  const wanted = canonicalContact(request.contact);
  const prefixes = request.from || request.to ? hourPrefixes(request.from ?? new Date(0), request.to ?? new Date()) : [ARCHIVE_PREFIX];
  for (const prefix of prefixes) {
    for await (const { key } of objects.list(prefix)) {
      counts.objects++;
      if (!mayHoldContact(await objects.contactIndex(key), request.contact)) continue;
      counts.read++;
      const kept: ArchiveRecord[] = [];
      const keptContacts: string[] = [];
      let removed = 0;
      for (const record of await objects.read(key)) {
        // A line that is not a record cannot be told apart from a payload naming the contact: it goes too.
        if (record && !namesContact(record, request.phoneNumberId, wanted)) {
          kept.push(record);
          keptContacts.push(...contactsOf(eventsOf(record)));
        } else removed++;
      }
      if (removed === 0) continue;
      counts.recordsRemoved += removed;
      if (kept.length === 0) {
        await objects.delete(key);
        counts.deleted++;
      } else {
        await objects.rewrite(key, kept, keptContacts);
        counts.rewritten++;
      }
    }
  }
  return counts;
}

function namesContact(record: ArchiveRecord, phoneNumberId: string, canonical: string): boolean {
  const onNumber = eventsOf(record).filter((e) => e.phoneNumberId === phoneNumberId);
  return contactsOf(onNumber).some((c) => canonicalContact(c) === canonical);
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
