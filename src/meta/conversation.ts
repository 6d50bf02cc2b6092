import { createHash } from 'node:crypto';
import type { WhatsAppEvent } from './event';
import { itemsOf, objectOrUndefined, textOrUndefined, type JsonObject } from './untrusted-json';

/**
 * Conversation order. Pure: no I/O, no clock.
 *
 * On a FIFO inbound queue every payload goes to the SQS message group of its conversation,
 * `<phone_number_id>:<contact>`, so SQS (and the worker) hand one person's messages to Bird one at a
 * time and in order, while other people's run in parallel.
 */

/** SQS: 1–128 characters, alphanumeric and punctuation only. */
const MAX_GROUP_ID_LENGTH = 128;
const GROUP_ID_CHARS = /[^\x21-\x7E]/g;

interface Side {
  phoneNumberId?: string;
  contact?: string;
}

/**
 * The conversation a webhook payload belongs to: `<phone_number_id>:<contact>`.
 * The contact is the first message's group (`group:<group_id>`), else its sender (`from_user_id`,
 * else `from`, else its change's only contact: see conversationKeyOf for why the BSUID comes first),
 * else the first status's recipient (`recipient_user_id`, else `recipient_id`), else `entry.id`
 * (account events, errors).
 * The phone number id is that item's change's `metadata.phone_number_id`, else the first one the
 * payload names, else `entry.id` (account-level changes carry none).
 * One payload carries one group: Meta batches per business number, and in practice per user; a
 * payload mixing users is ordered behind the first one's conversation, which costs parallelism, never order.
 */
export function conversationGroupId(payload: unknown): string {
  const entries = itemsOf(objectOrUndefined(payload)?.entry).map(objectOrUndefined).filter((e): e is JsonObject => e !== undefined);
  const changes = entries.flatMap((entry) =>
    itemsOf(entry.changes)
      .map(objectOrUndefined)
      .filter((c): c is JsonObject => c !== undefined)
      .map((change) => {
        const value = objectOrUndefined(change.value);
        return { value, phoneNumberId: textOrUndefined(objectOrUndefined(value?.metadata)?.phone_number_id) };
      }),
  );
  const firstOf = (list: 'messages' | 'statuses', read: (item: JsonObject, value: JsonObject) => string | undefined): Side | undefined => {
    for (const change of changes) {
      for (const item of itemsOf(change.value?.[list])) {
        const fields = objectOrUndefined(item);
        const contact = fields && read(fields, change.value!);
        if (contact !== undefined) return { phoneNumberId: change.phoneNumberId, contact };
      }
    }
    return undefined;
  };
  const side =
    firstOf('messages', (m, value) => groupKey(textOrUndefined(m.group_id)) ?? textOrUndefined(m.from_user_id) ?? textOrUndefined(m.from) ?? onlyContact(value)) ??
    firstOf('statuses', (s) => textOrUndefined(s.recipient_user_id) ?? textOrUndefined(s.recipient_id)) ??
    {};
  const entryId = entries.map((e) => textOrUndefined(e.id)).find((id) => id !== undefined);
  const phoneNumberId = side.phoneNumberId ?? changes.map((c) => c.phoneNumberId).find((id) => id !== undefined) ?? entryId ?? '-';
  return sqsGroupId(`${phoneNumberId}:${side.contact ?? entryId ?? '-'}`);
}

/** A message naming nobody belongs to its change's only contact, as the normaliser reads it (odd-bsuid-only-no-from.json). */
function onlyContact(value: JsonObject): string | undefined {
  const contacts = itemsOf(value.contacts);
  if (contacts.length !== 1) return undefined;
  const contact = objectOrUndefined(contacts[0]);
  return textOrUndefined(contact?.user_id) ?? textOrUndefined(contact?.wa_id);
}

function groupKey(groupId: string | undefined): string | undefined {
  return groupId === undefined ? undefined : `group:${groupId}`;
}

/**
 * The key of the conversation an event belongs to, the same the FIFO group uses: the WhatsApp group
 * for a group message, else the person's BSUID when Meta sent one, else their number. The BSUID comes
 * first because it is the id that stays: a number changes (user_changed_number) and, for people who
 * adopt a username, disappears from webhooks; so one person's messages keep one group and one turn
 * buffer when Meta starts or stops sending their number.
 */
export function conversationKeyOf(event: Pick<WhatsAppEvent, 'groupId' | 'contact'>): string | undefined {
  return groupKey(event.groupId) ?? event.contact?.userId ?? event.contact?.waId ?? event.contact?.userKey;
}

/** A value SQS takes as MessageGroupId: odd characters replaced, an over-long id hashed (still one per input). */
export function sqsGroupId(raw: string): string {
  const clean = raw.replace(GROUP_ID_CHARS, '_');
  if (clean.length > 0 && clean.length <= MAX_GROUP_ID_LENGTH) return clean;
  return `sha256:${createHash('sha256').update(raw, 'utf8').digest('hex')}`;
}

/**
 * A payload's events in the order Bird gets them: by Meta's timestamp (whole seconds), ties kept in
 * payload order. An event without a timestamp (a `value.errors` item, an odd account change) keeps
 * its place after the event before it, so it is neither hoisted to the front nor pushed to the end.
 */
export function inTimestampOrder(events: readonly WhatsAppEvent[]): WhatsAppEvent[] {
  let carried = Number.NEGATIVE_INFINITY;
  const keyed = events.map((event, index) => {
    const seconds = Number(event.timestamp);
    if (event.timestamp !== undefined && Number.isFinite(seconds)) carried = seconds;
    return { event, index, at: carried };
  });
  keyed.sort((a, b) => a.at - b.at || a.index - b.index);
  return keyed.map((k) => k.event);
}
