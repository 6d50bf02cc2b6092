import { createHash } from 'node:crypto';
import type { WhatsAppEvent } from './event';
import { itemsOf, objectOrUndefined, textOrUndefined, type JsonObject } from './untrusted-json';

/**
 * Conversation order. Pure: no I/O, no clock.
 *
 * On a FIFO inbound queue every payload goes to the SQS message group of its conversation,
 * `<phone_number_id>:<contact>`, so SQS (and the worker) hand one person's messages to Bird one at a
 * time and in order, while other people's run in parallel. Statuses go to a group of their own
 * (inboundRoutes), so a message being retried never holds them back.
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
  const parts = partsOf(payload);
  const side = parts.firstSender ?? parts.firstRecipient ?? {};
  return groupIdOf(parts, side);
}

/** The two halves of a payload's conversation (see conversationGroupId), unsanitised: `-` where the payload names none. */
export function conversationOf(payload: unknown): { phoneNumberId: string; contact: string } {
  const parts = partsOf(payload);
  return halvesOf(parts, parts.firstSender ?? parts.firstRecipient ?? {});
}

/**
 * Which part of a payload an SQS message carries (the `lane` attribute): a mixed payload travels
 * twice, byte for byte, and each copy's worker handles only its lane's events.
 */
export type InboundLane = 'conversation' | 'statuses';

/** Where a payload goes on a FIFO queue: its MessageGroupId, and the lane when the payload is split. */
export interface InboundRoute {
  groupId: string;
  /** Absent: every event of the payload belongs to this route. */
  lane?: InboundLane;
}

/** Ends the group of a recipient's statuses, next to (never inside) that person's conversation group. */
export const STATUS_GROUP_SUFFIX = ':status';

/**
 * The status lane. A status only moves a record forward (src/outbound/record.ts), so it needs no
 * place in the conversation's order, and must not wait behind a message of it that is being
 * retried: the sender resends a reply it has no status for after its grace. So statuses go to a
 * group of their own per recipient, `<phone_number_id>:<recipient>:status`, the recipient read as
 * the conversation group reads it (`recipient_user_id`, else `recipient_id`: the BSUID first), so one
 * person's status group stays one when Meta starts or stops sending their number:
 * - statuses only: one route, the status group;
 * - no status: one route, the conversation group (as before);
 * - both (a POST mixing messages and statuses): two routes, the same bytes to each, the
 *   conversation group with lane `conversation` (every event but the statuses) and the status
 *   group with lane `statuses`. Each event is still handled by exactly one copy.
 * `events` are the payload's events (envelopeToEvents), read for their kinds only.
 */
export function inboundRoutes(payload: unknown, events: readonly Pick<WhatsAppEvent, 'kind'>[]): InboundRoute[] {
  const hasStatus = events.some((e) => e.kind === 'status');
  const hasOther = events.some((e) => e.kind !== 'status');
  if (!hasStatus) return [{ groupId: conversationGroupId(payload) }];
  const parts = partsOf(payload);
  const statusGroup = groupIdOf(parts, parts.firstRecipient ?? {}, STATUS_GROUP_SUFFIX);
  if (!hasOther) return [{ groupId: statusGroup }];
  return [
    { groupId: conversationGroupId(payload), lane: 'conversation' },
    { groupId: statusGroup, lane: 'statuses' },
  ];
}

/** The events of a payload that a message of `lane` handles (every event when it has none). */
export function inLane(lane: string | undefined): (event: Pick<WhatsAppEvent, 'kind'>) => boolean {
  if (lane === 'statuses') return (event) => event.kind === 'status';
  if (lane === 'conversation') return (event) => event.kind !== 'status';
  return () => true;
}

interface PayloadParts {
  firstSender?: Side;
  firstRecipient?: Side;
  firstPhoneNumberId?: string;
  entryId?: string;
}

function partsOf(payload: unknown): PayloadParts {
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
  return {
    firstSender: firstOf('messages', (m, value) => groupKey(textOrUndefined(m.group_id)) ?? textOrUndefined(m.from_user_id) ?? textOrUndefined(m.from) ?? onlyContact(value)),
    firstRecipient: firstOf('statuses', (s) => textOrUndefined(s.recipient_user_id) ?? textOrUndefined(s.recipient_id)),
    firstPhoneNumberId: changes.map((c) => c.phoneNumberId).find((id) => id !== undefined),
    entryId: entries.map((e) => textOrUndefined(e.id)).find((id) => id !== undefined),
  };
}

function halvesOf(parts: PayloadParts, side: Side): { phoneNumberId: string; contact: string } {
  return { phoneNumberId: side.phoneNumberId ?? parts.firstPhoneNumberId ?? parts.entryId ?? '-', contact: side.contact ?? parts.entryId ?? '-' };
}

function groupIdOf(parts: PayloadParts, side: Side, suffix = ''): string {
  const { phoneNumberId, contact } = halvesOf(parts, side);
  return sqsGroupId(`${phoneNumberId}:${contact}${suffix}`);
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
