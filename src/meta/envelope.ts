import type { EventContact, EventKind, WhatsAppEvent } from './event';
import { contentKey, eventKey } from './event-key';
import { isKnownMessageType, messageContent } from './message-content';
import {
  type JsonObject,
  finiteNumberOrUndefined,
  itemsOf,
  objectOrUndefined,
  textOrUndefined,
} from './untrusted-json';

export { canonicalJson, contentKey, eventKey, messageKey, statusKey } from './event-key';
export type { ContentKeyParts } from './event-key';
export { MEDIA_KINDS, isMediaKind } from './message-content';

/**
 * The webhook envelope → normalised events. Pure: no I/O, no clock, no logging.
 *
 * One event per entry × change × (message | status | value.errors[] item), and one per change of
 * any other field. Nothing is ever dropped and nothing throws: whatever cannot be understood (a
 * payload with no entry list, an entry with no changes, an item that is not an object, a change
 * of a field we do not know, a `messages` change that holds nothing we recognise) becomes an
 * `unknown` event carrying its raw data, so the operator sees it and Meta's delivery is never
 * lost. The list is therefore never empty.
 */
export function envelopeToEvents(payload: unknown): WhatsAppEvent[] {
  try {
    const envelope = objectOrUndefined(payload);
    const events = itemsOf(envelope?.entry).flatMap(entryToEvents);
    return events.length > 0 ? events : [unknownEvent({ field: '', raw: payload })];
  } catch {
    // Reached only by values JSON.parse cannot produce (throwing getters, proxies, nesting
    // deeper than the stack); a webhook body can never get here.
    return [unreadableEvent(payload)];
  }
}

/**
 * Fields other than `messages` that Meta documents (CONTRACT.md §3), plus the `group_*`
 * family. Their changes become one `account` event each. A field not on this list becomes
 * `unknown` rather than `account`: Meta adds fields without notice, and an operator wants a
 * field nobody has looked at to stand out in metrics and in the Flow, not to pass as a known
 * account update. `history` and `smb_message_echoes` carry messages too, but past ones or ones the
 * business sent itself: they must not reach the AI as new customer messages, so they stay one
 * account event with the whole value as raw.
 */
const ACCOUNT_FIELDS: ReadonlySet<string> = new Set([
  'message_template_status_update',
  'account_update',
  'account_alerts',
  'business_capability_update',
  'phone_number_quality_update',
  'phone_number_name_update',
  'template_category_update',
  'message_template_quality_update',
  'message_template_components_update',
  'security',
  'user_preferences',
  'history',
  'smb_message_echoes',
  'smb_app_state_sync',
  'partner_solutions',
  'payment_configuration_update',
  'automatic_events',
  'calls',
  'messaging_handovers',
  'standby',
]);

export function isAccountField(field: string): boolean {
  return ACCOUNT_FIELDS.has(field) || field.startsWith('group_');
}

/** What every event of one change shares. */
interface ChangeScope {
  field: string;
  wabaId?: string;
  phoneNumberId?: string;
  displayPhoneNumber?: string;
}

type EventBody = Omit<WhatsAppEvent, 'key'>;

function keyed(event: EventBody): WhatsAppEvent {
  return { key: eventKey(event), ...event };
}

function unknownEvent(event: Omit<EventBody, 'kind'>): WhatsAppEvent {
  return keyed({ ...event, kind: 'unknown' });
}

function entryToEvents(entry: unknown): WhatsAppEvent[] {
  const fields = objectOrUndefined(entry);
  if (!fields) return [unknownEvent({ field: '', raw: entry })];
  const wabaId = textOrUndefined(fields.id);
  const time = textOrUndefined(fields.time);
  // Meta's own account_update example puts `field` on the entry instead of the change
  // (odd-account-update-misplaced-field-object.json): used when the change has none.
  const entryField = textOrUndefined(fields.field);
  const events = itemsOf(fields.changes).flatMap((change) => changeToEvents(change, { wabaId, time, entryField }));
  return events.length > 0
    ? events
    : [unknownEvent({ field: entryField ?? '', wabaId, timestamp: time, raw: entry })];
}

function changeToEvents(
  change: unknown,
  entry: { wabaId?: string; time?: string; entryField?: string },
): WhatsAppEvent[] {
  const fields = objectOrUndefined(change);
  if (!fields) {
    return [
      unknownEvent({ field: entry.entryField ?? '', wabaId: entry.wabaId, timestamp: entry.time, raw: change }),
    ];
  }
  const field = textOrUndefined(fields.field) ?? entry.entryField;
  const value = objectOrUndefined(fields.value);
  const metadata = objectOrUndefined(value?.metadata);
  const scope: ChangeScope = {
    field: field ?? '',
    wabaId: entry.wabaId,
    phoneNumberId: textOrUndefined(metadata?.phone_number_id),
    displayPhoneNumber: textOrUndefined(metadata?.display_phone_number),
  };
  // The change value is what operators and the Flow read; the whole change only when it has none.
  const raw = 'value' in fields ? fields.value : change;

  if (field === 'messages' && value) {
    const events = messagesValueToEvents(value, scope);
    if (events.length > 0) return events;
  }
  const kind: EventKind = field !== undefined && isAccountField(field) ? 'account' : 'unknown';
  const person = kind === 'account' && value ? conversationSide(scope.field, value) : undefined;
  return [keyed({ ...scope, kind, timestamp: entry.time, raw, ...person, phoneNumberId: scope.phoneNumberId ?? person?.phoneNumberId })];
}

/**
 * The person an account change is about, for the fields that move a conversation's state (their
 * first item; Meta sends one per change in every example): `smb_message_echoes` (the owner wrote
 * from the WhatsApp Business app: `to`), `calls` (the caller: `from`), `messaging_handovers` (the
 * thread's user: `sender`; the line is `recipient.phone_number_id`, there is no metadata) and
 * `standby` (messages while another app has the thread: their sender). Their timestamp is the item's.
 */
function conversationSide(field: string, value: JsonObject): Pick<EventBody, 'contact' | 'timestamp' | 'phoneNumberId'> | undefined {
  const first = (list: unknown) => objectOrUndefined(itemsOf(list)[0]);
  const contacts = itemsOf(value.contacts).map(objectOrUndefined).filter((c): c is JsonObject => c !== undefined);
  switch (field) {
    case 'smb_message_echoes': {
      const echo = first(value.message_echoes);
      if (!echo) return undefined;
      return { contact: contactOf(textOrUndefined(echo.to), textOrUndefined(echo.to_user_id), contacts), timestamp: textOrUndefined(echo.timestamp) };
    }
    case 'calls': {
      const call = first(value.calls);
      if (!call) return undefined;
      return { contact: contactOf(textOrUndefined(call.from), textOrUndefined(call.from_user_id), contacts), timestamp: textOrUndefined(call.timestamp) };
    }
    case 'messaging_handovers': {
      const sender = objectOrUndefined(value.sender);
      return {
        contact: contactOf(textOrUndefined(sender?.phone_number) ?? textOrUndefined(sender?.wa_id), textOrUndefined(sender?.user_id), contacts),
        timestamp: textOrUndefined(value.timestamp),
        phoneNumberId: textOrUndefined(objectOrUndefined(value.recipient)?.phone_number_id),
      };
    }
    case 'standby': {
      const message = first(value.messages);
      if (!message) return undefined;
      return { contact: contactOf(textOrUndefined(message.from), textOrUndefined(message.from_user_id), contacts), timestamp: textOrUndefined(message.timestamp) };
    }
    default:
      return undefined;
  }
}

function messagesValueToEvents(value: JsonObject, scope: ChangeScope): WhatsAppEvent[] {
  const contacts = itemsOf(value.contacts)
    .map(objectOrUndefined)
    .filter((contact): contact is JsonObject => contact !== undefined);
  return [
    ...itemsOf(value.messages).map((message) => messageEvent(message, scope, contacts)),
    ...itemsOf(value.statuses).map((status) => statusEvent(status, scope, contacts)),
    ...itemsOf(value.errors).map((error) => errorEvent(error, scope)),
  ];
}

/**
 * A message of a type we know is kind `message`; one of a type we do not know is kind
 * `unknown` but still carries `message.id` and `message.type` so it can be told apart. A known
 * message lacking an id stays a `message` (its text may matter) and gets a content-hash key.
 */
function messageEvent(item: unknown, scope: ChangeScope, contacts: JsonObject[]): WhatsAppEvent {
  const message = objectOrUndefined(item);
  if (!message) return unknownEvent({ ...scope, raw: item });
  const type = textOrUndefined(message.type) ?? '';
  const known = isKnownMessageType(type);
  const content = known ? messageContent(type, message) : {};
  return keyed({
    ...scope,
    kind: known ? 'message' : 'unknown',
    timestamp: textOrUndefined(message.timestamp),
    contact: contactOf(textOrUndefined(message.from), textOrUndefined(message.from_user_id), contacts),
    message: {
      id: textOrUndefined(message.id) ?? '',
      type,
      ...content,
      replyToId: textOrUndefined(objectOrUndefined(message.context)?.id),
    },
    ...(textOrUndefined(message.group_id) ? { groupId: textOrUndefined(message.group_id) } : {}),
    raw: item,
  });
}

/**
 * Any `status` value with an id is kept as a status (Meta added `played` without notice; more
 * will come): the key `status#<wamid>#<status>` stays well defined, and nothing renders it to the
 * AI, so there is no reason to call it unknown. Without an id or a status it cannot be keyed or
 * understood: `unknown`.
 */
function statusEvent(item: unknown, scope: ChangeScope, contacts: JsonObject[]): WhatsAppEvent {
  const status = objectOrUndefined(item);
  const id = textOrUndefined(status?.id);
  const state = textOrUndefined(status?.status);
  if (!status || !id || !state) return unknownEvent({ ...scope, raw: item });
  const recipientId = textOrUndefined(status.recipient_id);
  const participant =
    status.recipient_type === 'group' ? (textOrUndefined(status.recipient_participant_user_id) ?? textOrUndefined(status.recipient_participant_id)) : undefined;
  return keyed({
    ...scope,
    kind: 'status',
    timestamp: textOrUndefined(status.timestamp),
    contact: contactOf(recipientId, textOrUndefined(status.recipient_user_id), contacts),
    status: { id, status: state, recipientId, ...(participant ? { participant } : {}) },
    raw: item,
  });
}

function errorEvent(item: unknown, scope: ChangeScope): WhatsAppEvent {
  const error = objectOrUndefined(item);
  if (!error) return unknownEvent({ ...scope, raw: item });
  return keyed({
    ...scope,
    kind: 'error',
    error: { code: finiteNumberOrUndefined(error.code), title: textOrUndefined(error.title) },
    raw: item,
  });
}

/**
 * The user a message came from or a status went to. Since the 2026 BSUID rollout `from`/`wa_id`
 * may be missing, so the user is keyed on the phone number when there is one, else the
 * business-scoped user id. Name and username come from the `contacts[]` entry with the same
 * wa_id or user_id; when the item names nobody at all, the change's only contact is the user
 * (odd-bsuid-only-no-from.json). A contact whose ids differ from the item's is never borrowed:
 * a wrong name is worse than none.
 */
function contactOf(
  waId: string | undefined,
  userId: string | undefined,
  contacts: JsonObject[],
): EventContact | undefined {
  const match =
    waId !== undefined || userId !== undefined
      ? contacts.find(
          (contact) =>
            (waId !== undefined && textOrUndefined(contact.wa_id) === waId) ||
            (userId !== undefined && textOrUndefined(contact.user_id) === userId),
        )
      : contacts.length === 1
        ? contacts[0]
        : undefined;
  const contactWaId = waId ?? textOrUndefined(match?.wa_id);
  const contactUserId = userId ?? textOrUndefined(match?.user_id);
  const profile = objectOrUndefined(match?.profile);
  const userKey = contactWaId ?? contactUserId;
  if (userKey === undefined && match === undefined) return undefined;
  return {
    userKey,
    waId: contactWaId,
    userId: contactUserId,
    name: textOrUndefined(profile?.name),
    username: textOrUndefined(profile?.username),
  };
}

/**
 * The last resort for inputs that made reading throw. Its key must not depend on walking the
 * payload again (that is what threw), so it hashes only the payload's type tag: such inputs
 * cannot come from a webhook body, and collapsing them onto one key is harmless.
 */
function unreadableEvent(payload: unknown): WhatsAppEvent {
  let tag = 'unreadable';
  try {
    tag = `unreadable ${Object.prototype.toString.call(payload)}`;
  } catch {
    // A revoked proxy can even refuse toString; the plain tag is enough.
  }
  return { key: contentKey('unknown', { field: '', raw: tag }), kind: 'unknown', field: '', raw: payload };
}
