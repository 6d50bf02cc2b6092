import { finiteNumberOrUndefined, objectOrUndefined, textOrUndefined, type JsonObject } from '../meta/untrusted-json';
import { PHONE_IDENTIFIER_KEY } from './conversations-request';

/*
 * Bird webhook events of the conversations service (the one place that knows their shapes).
 *
 * Envelope, as docs.bird.com shows it ("Events", /api/conversations-api/api-reference/events):
 *   {"service": "conversations", "event": "conversation.updated", "payload": {...}}
 * - conversation.created / conversation.updated carry a conversation object
 *   ({id, channelId, featuredParticipants: [{id, type, contact: {identifierKey, identifierValue}}],
 *   lastMessage: {id, type, preview, recipients, status, sender: {id, type}}}; "Create
 *   conversation" and "Update conversation" show the same object). lastMessage has only a preview,
 *   so its full body is read with "Get conversation message" before it is sent.
 * - a message event carries a conversation message object ({id, conversationId, sender: {id, type},
 *   recipients: [{type: "to", identifierKey, identifierValue}], draft, status, body, createdAt};
 *   "Get/Update conversation message"). Its body is sent as it is.
 * Participant types are contact, user (agent), accessKey, flow and bot ("Migrating conversations
 * API actions"): everything said by anyone but the contact goes to the contact on WhatsApp.
 */

export type BirdWebhookAction =
  /** A complete message to send: `to` is the contact's wa_id. */
  | { action: 'send'; messageId: string; conversationId: string; to: string; message: JsonObject }
  /** The conversation's last message came from the AI/agent/flow: read its body, then send. */
  | { action: 'fetch'; messageId: string; conversationId: string; to: string }
  | { action: 'ignore'; reason: BirdIgnoreReason };

export type BirdIgnoreReason =
  | 'not_json'
  | 'other_service'
  | 'other_event'
  | 'other_channel'
  | 'no_message'
  | 'from_contact'
  | 'draft'
  | 'no_contact'
  | 'unsupported_type'
  | 'stale_message';

/**
 * Older messages are not sent: a conversation is also updated for other reasons (status, participants)
 * while its lastMessage is an old answer. Longer than Bird's 8 hours of retries; WhatsApp's customer
 * service window is 24 hours anyway.
 */
export const MAX_MESSAGE_AGE_MS = 24 * 3600_000;

/** WhatsApp contacts are `phonenumber` identifiers in +E.164; Meta's `to` is the same digits without `+`. */
function waIdOf(identifierKey: unknown, identifierValue: unknown): string | undefined {
  if (identifierKey !== PHONE_IDENTIFIER_KEY) return undefined;
  const value = textOrUndefined(identifierValue);
  if (!value || !/^\+?[0-9]{6,20}$/.test(value)) return undefined;
  return value.replace(/^\+/, '');
}

function contactOfConversation(conversation: JsonObject): string | undefined {
  const participants = Array.isArray(conversation.featuredParticipants) ? conversation.featuredParticipants : [];
  for (const participant of participants.map(objectOrUndefined)) {
    if (participant?.type !== 'contact') continue;
    const contact = objectOrUndefined(participant.contact);
    const waId = waIdOf(contact?.identifierKey, contact?.identifierValue);
    if (waId) return waId;
  }
  return undefined;
}

function contactOfMessage(message: JsonObject): string | undefined {
  const recipients = Array.isArray(message.recipients) ? message.recipients : [];
  for (const recipient of recipients.map(objectOrUndefined)) {
    if (recipient && recipient.type !== undefined && recipient.type !== 'to') continue;
    const waId = waIdOf(recipient?.identifierKey, recipient?.identifierValue);
    if (waId) return waId;
  }
  return undefined;
}

function senderType(message: JsonObject): string | undefined {
  return textOrUndefined(objectOrUndefined(message.sender)?.type);
}

/** What to do with one Bird webhook for a line whose conversations live on `channelId`. */
export function birdWebhookAction(raw: Buffer, channelId: string, nowMs = Date.now()): BirdWebhookAction {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    return { action: 'ignore', reason: 'not_json' };
  }
  const envelope = objectOrUndefined(parsed);
  if (envelope?.service !== 'conversations') return { action: 'ignore', reason: 'other_service' };
  const event = textOrUndefined(envelope.event) ?? '';
  const payload = objectOrUndefined(envelope.payload);
  if (!payload) return { action: 'ignore', reason: 'no_message' };
  const payloadChannel = textOrUndefined(payload.channelId);
  if (payloadChannel !== undefined && payloadChannel !== channelId) return { action: 'ignore', reason: 'other_channel' };

  if (event === 'conversation.created' || event === 'conversation.updated') {
    const last = objectOrUndefined(payload.lastMessage);
    const messageId = textOrUndefined(last?.id);
    const conversationId = textOrUndefined(payload.id);
    if (!last || !messageId || !conversationId) return { action: 'ignore', reason: 'no_message' };
    const sender = senderType(last);
    if (sender === undefined || sender === 'contact') return { action: 'ignore', reason: 'from_contact' };
    const to = contactOfMessage(last) ?? contactOfConversation(payload);
    if (!to) return { action: 'ignore', reason: 'no_contact' };
    return { action: 'fetch', messageId, conversationId, to };
  }

  // A message event: the payload is the message itself.
  if (!/message/i.test(event) || !/created/i.test(event)) return { action: 'ignore', reason: 'other_event' };
  return messageAction(payload, undefined, nowMs);
}

/** A conversation message object (from a message event or "Get conversation message"). */
export function messageAction(message: JsonObject, knownContact?: string, nowMs = Date.now()): BirdWebhookAction {
  const messageId = textOrUndefined(message.id);
  const conversationId = textOrUndefined(message.conversationId);
  if (!messageId || !conversationId || !objectOrUndefined(message.body)) return { action: 'ignore', reason: 'no_message' };
  const sender = senderType(message);
  if (sender === undefined || sender === 'contact') return { action: 'ignore', reason: 'from_contact' };
  if (message.draft === true) return { action: 'ignore', reason: 'draft' };
  const createdAt = Date.parse(textOrUndefined(message.createdAt) ?? '');
  if (Number.isFinite(createdAt) && nowMs - createdAt > MAX_MESSAGE_AGE_MS) return { action: 'ignore', reason: 'stale_message' };
  const to = contactOfMessage(message) ?? knownContact;
  if (!to) return { action: 'ignore', reason: 'no_contact' };
  return { action: 'send', messageId, conversationId, to, message };
}

/**
 * A Bird message body (Channels API message types: text, image, file, location) as a Meta send
 * body without `to`, or undefined for types WhatsApp cannot carry as they are.
 */
export function birdBodyToSendBody(message: JsonObject): Record<string, unknown> & { type: string } | undefined {
  const body = objectOrUndefined(message.body);
  const type = textOrUndefined(body?.type);
  const content = type ? objectOrUndefined(body?.[type]) : undefined;
  if (!type || !content) return undefined;
  const caption = textOrUndefined(content.text);
  switch (type) {
    case 'text':
      return caption ? { type: 'text', text: { body: caption } } : undefined;
    case 'image': {
      const image = Array.isArray(content.images) ? objectOrUndefined(content.images[0]) : undefined;
      const link = textOrUndefined(image?.mediaUrl);
      return link ? { type: 'image', image: { link, ...(caption ? { caption } : {}) } } : undefined;
    }
    case 'file': {
      const file = Array.isArray(content.files) ? objectOrUndefined(content.files[0]) : undefined;
      const link = textOrUndefined(file?.mediaUrl);
      if (!link) return undefined;
      const contentType = textOrUndefined(file?.contentType) ?? '';
      const filename = textOrUndefined(file?.filename);
      const kind = /^(audio|video)\//.test(contentType) ? contentType.split('/')[0]! : 'document';
      const media: Record<string, unknown> = { link };
      if (kind === 'document' && filename) media.filename = filename;
      if (kind !== 'audio' && caption) media.caption = caption;
      return { type: kind, [kind]: media };
    }
    case 'location': {
      const coordinates = objectOrUndefined(content.coordinates);
      const latitude = finiteNumberOrUndefined(coordinates?.latitude);
      const longitude = finiteNumberOrUndefined(coordinates?.longitude);
      if (latitude === undefined || longitude === undefined) return undefined;
      const place = objectOrUndefined(content.location);
      const name = textOrUndefined(place?.label);
      const address = textOrUndefined(place?.address);
      return { type: 'location', location: { latitude, longitude, ...(name ? { name } : {}), ...(address ? { address } : {}) } };
    }
    default:
      return undefined;
  }
}

export function conversationMessagePath(workspaceId: string, conversationId: string, messageId: string): string {
  return `/workspaces/${encodeURIComponent(workspaceId)}/conversations/${encodeURIComponent(conversationId)}/messages/${encodeURIComponent(messageId)}`;
}
