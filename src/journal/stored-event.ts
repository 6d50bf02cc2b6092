import type { MediaKind } from '../meta/event';
import { finiteNumberOrUndefined, objectOrUndefined, textOrUndefined } from '../meta/untrusted-json';
import { contactDigest, eventHandle, lastFour, wamidDigest } from '../privacy/pseudonyms';

/**
 * What the journal may store of an event, projected when it is written (not when it is shown), so
 * no read path can leak what was never kept. An allow-list: only the fields named here survive, so
 * a field Meta adds tomorrow is dropped, not stored. A person's number or BSUID becomes its last 4
 * characters and its contact digest; a wamid (base64 of a structure that begins with the sender's
 * number) becomes its digest; media keep their kind, type and size, never a URL, a token or Meta's
 * media id. Pure.
 */

/** A person as stored: enough to recognise them in a list, and to find them by hashing what an operator types. */
export interface StoredPerson {
  lastFour: string;
  digest: string;
}

export interface StoredMedia {
  kind?: MediaKind;
  mimeType?: string;
  filename?: string;
  caption?: string;
  size?: number;
  /** Why the file could not be fetched, when it could not. */
  error?: string;
}

export interface StoredMessage {
  /** wamidDigest of the message's id. */
  id?: string;
  type?: string;
  text?: string;
  media?: StoredMedia;
  replyTo?: string;
  target?: string;
}

export interface StoredEvent {
  /** eventHandle of the event key (the turn's messages: of their own keys). */
  handle?: string;
  kind?: string;
  field?: string;
  phoneNumberId?: string;
  /** The business's number, shown like a person's: its last 4. */
  displayPhoneNumber?: string;
  timestamp?: string;
  receivedAt?: string;
  contact?: StoredPerson & { name?: string; username?: string; userId?: StoredPerson };
  /** A message in a WhatsApp group: the group's id as a person's (last 4 and digest: the contacts table's byGroup key hashes it too). */
  group?: StoredPerson;
  /** A turn's message: the conversation state Bird was told (src/conversation). An opaque contact id, never a number. */
  conversation?: StoredConversation;
  message?: StoredMessage;
  status?: { id?: string; status?: string; recipient?: StoredPerson; participant?: StoredPerson };
  error?: { code?: number; title?: string };
  /** A reply of ours: its opaque outbound id (the caller's idempotency key may carry an event key, so it is left out). */
  outbound?: { id?: string };
  turn?: { id?: string; cut?: string; messages: StoredEvent[] };
}

export interface StoredConversation {
  contactId?: string;
  windowOpenUntil?: string | null;
  paused?: { until?: string | null; by?: string } | null;
}

export function storedPerson(value: unknown): StoredPerson | undefined {
  const text = textOrUndefined(value);
  return text ? { lastFour: lastFour(text), digest: contactDigest(text) } : undefined;
}

function digestOf(value: unknown): string | undefined {
  const text = textOrUndefined(value);
  return text ? wamidDigest(text) : undefined;
}

function storedMedia(value: unknown): StoredMedia | undefined {
  const media = objectOrUndefined(value);
  if (!media) return undefined;
  return {
    kind: textOrUndefined(media.kind) as MediaKind | undefined,
    mimeType: textOrUndefined(media.mimeType),
    filename: textOrUndefined(media.filename),
    caption: textOrUndefined(media.caption),
    size: finiteNumberOrUndefined(media.size),
    error: textOrUndefined(media.error),
  };
}

function storedMessage(value: unknown): StoredMessage | undefined {
  const message = objectOrUndefined(value);
  if (!message) return undefined;
  return {
    id: digestOf(message.id),
    type: textOrUndefined(message.type),
    text: message.type === 'system' ? withNumbersMasked(textOrUndefined(message.text)) : textOrUndefined(message.text),
    media: storedMedia(message.media),
    replyTo: digestOf(message.replyToId),
    target: digestOf(message.targetMessageId),
  };
}

function storedConversation(value: unknown): StoredConversation | undefined {
  const conversation = objectOrUndefined(value);
  if (!conversation) return undefined;
  const paused = conversation.paused === null ? null : objectOrUndefined(conversation.paused);
  return {
    contactId: textOrUndefined(conversation.contactId),
    windowOpenUntil: conversation.windowOpenUntil === null ? null : textOrUndefined(conversation.windowOpenUntil),
    paused: paused && { until: paused.until === null ? null : textOrUndefined(paused.until), by: textOrUndefined(paused.by) },
  };
}

function storedContact(value: unknown): StoredEvent['contact'] {
  const contact = objectOrUndefined(value);
  const person = storedPerson(contact?.userKey ?? contact?.waId ?? contact?.userId);
  if (!contact || !person) return undefined;
  const userId = textOrUndefined(contact.userId);
  return {
    ...person,
    name: textOrUndefined(contact.name),
    username: textOrUndefined(contact.username),
    // A BSUID beside a wa_id: a second identity of the same person.
    userId: userId && userId !== contact.userKey ? storedPerson(userId) : undefined,
  };
}

/**
 * The projection of any event shape the gateway builds: a WhatsAppEvent, or a FlowBody inside a
 * turn (`reference` is its event key, `line.phoneNumberId` its line). Input is untrusted JSON.
 */
export function storedEvent(value: unknown): StoredEvent {
  const event = objectOrUndefined(value) ?? {};
  const key = textOrUndefined(event.key) ?? textOrUndefined(event.reference);
  const status = objectOrUndefined(event.status);
  const error = objectOrUndefined(event.error);
  const outbound = objectOrUndefined(event.outbound);
  const turn = objectOrUndefined(event.turn);
  const display = textOrUndefined(event.displayPhoneNumber);
  const stored: StoredEvent = {
    handle: key ? eventHandle(key) : undefined,
    kind: textOrUndefined(event.kind),
    field: textOrUndefined(event.field),
    phoneNumberId: textOrUndefined(event.phoneNumberId) ?? textOrUndefined(objectOrUndefined(event.line)?.phoneNumberId),
    displayPhoneNumber: display ? lastFour(display) : undefined,
    timestamp: textOrUndefined(event.timestamp),
    receivedAt: textOrUndefined(event.receivedAt),
    contact: storedContact(event.contact),
    group: storedPerson(event.groupId),
    conversation: storedConversation(event.conversation),
    message: storedMessage(event.message),
    status: status && {
      id: digestOf(status.id),
      status: textOrUndefined(status.status),
      recipient: storedPerson(status.recipientId),
      participant: storedPerson(status.participant),
    },
    error: error && { code: finiteNumberOrUndefined(error.code), title: textOrUndefined(error.title) },
    outbound: outbound && { id: textOrUndefined(outbound.id) },
  };
  if (turn) {
    const messages = Array.isArray(turn.messages) ? turn.messages.map((m) => withoutRepeats(storedEvent(m), stored)) : [];
    stored.turn = { id: textOrUndefined(turn.id), cut: textOrUndefined(turn.cut), messages };
  }
  return withoutEmpty(stored) as StoredEvent;
}

/** A turn's messages share its contact, group and line: stored once, on the turn. */
function withoutRepeats(message: StoredEvent, turn: StoredEvent): StoredEvent {
  const { contact, group, phoneNumberId, field, ...rest } = message;
  return {
    ...rest,
    ...(JSON.stringify(contact) !== JSON.stringify(turn.contact) ? { contact } : {}),
    ...(JSON.stringify(group) !== JSON.stringify(turn.group) ? { group } : {}),
    ...(phoneNumberId !== turn.phoneNumberId ? { phoneNumberId } : {}),
    ...(field !== turn.field ? { field } : {}),
  };
}

/** Meta's own texts (system messages: "User … changed from <number> to <number>") name people by number: only the last 4 are kept. */
function withNumbersMasked(text: string | undefined): string | undefined {
  return text?.replace(/\+?\d[\d -]{6,}\d/g, (number) => lastFour(number));
}

/** Undefined members and objects left empty are dropped: the stored JSON stays small. */
function withoutEmpty(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutEmpty);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value)
    .map(([name, member]) => [name, withoutEmpty(member)] as const)
    .filter(([, member]) => member !== undefined && !(member !== null && typeof member === 'object' && !Array.isArray(member) && Object.keys(member).length === 0));
  return Object.fromEntries(entries);
}

