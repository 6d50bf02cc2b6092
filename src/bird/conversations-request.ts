import type { WhatsAppEvent } from '../meta/event';
import { finiteNumberOrUndefined, objectOrUndefined, textOrUndefined } from '../meta/untrusted-json';
import type { BirdDelivery } from './delivery';

/*
 * Bird Conversations API shapes (the one place that knows them).
 *
 * Route, as documented at docs.bird.com/api/conversations-api/api-reference:
 *  1. find the contact's active conversation on the line's channel:
 *     GET /workspaces/{ws}/participants/phonenumber/{+E164}/conversations?channelId={ch}&status=active
 *     ("List participant conversations by identifier key and value"; channelId is a required query);
 *  2. if there is none, create it with the contact as participant:
 *     POST /workspaces/{ws}/conversations {channelId, participants:[{type:"contact", identifierKey, identifierValue}]}
 *     ("Create conversation");
 *  3. post the message as the contact:
 *     POST /workspaces/{ws}/conversations/{id}/messages {participantType:"contact", participantId, body, reference}
 *     ("Create conversation message": participantType must be accessKey, flow or contact; the contact
 *     participant's id is the Bird contact id; addMissingParticipants avoids the error when the
 *     contact is not yet a participant of a conversation found in step 1).
 * The Channels API (POST /workspaces/{ws}/channels/{ch}/messages) was ruled out: it sends a message
 * out to the contact, which is the opposite direction. Message bodies follow the Channels API
 * message types (docs.bird.com/api/channels-api/message-types): text, image, file, location.
 */

/** WhatsApp contacts are addressed by phone number in Bird (identifierKey `phonenumber`, +E.164). */
export const PHONE_IDENTIFIER_KEY = 'phonenumber';

export type ConversationMessageBody =
  | { type: 'text'; text: { text: string } }
  | { type: 'image'; image: { images: Array<{ mediaUrl: string; altText?: string }>; text?: string } }
  | { type: 'file'; file: { files: Array<{ mediaUrl: string; contentType: string; filename?: string }>; text?: string } }
  | {
      type: 'location';
      location: { coordinates: { latitude: number; longitude: number }; location?: { address?: string; label?: string } };
    };

export interface CreateConversationMessage {
  participantType: 'contact';
  participantId?: string;
  participantContactIdentifierKey: string;
  participantContactIdentifierValue: string;
  addMissingParticipants: true;
  reference: string;
  body: ConversationMessageBody;
  /** The conversation's state (src/conversation) as message metadata, JSON in `extraInformation.conversation`. */
  meta?: { extraInformation: { conversation: string } };
}

export interface CreateConversation {
  channelId: string;
  participants: Array<{ type: 'contact'; identifierKey: string; identifierValue: string }>;
}

export interface ConversationRef {
  conversationId: string;
  /** The contact's participant id (= Bird contact id), when Bird listed it. */
  contactParticipantId?: string;
}

/**
 * The contact's phone number in +E.164, or undefined when Meta sent none (2026 BSUID rollout:
 * a user may be known only by an opaque user id, which Bird's WhatsApp channel cannot address).
 */
export function contactPhoneNumber(event: WhatsAppEvent): string | undefined {
  const candidate = event.contact?.waId ?? event.contact?.userKey;
  if (!candidate || !/^\+?[0-9]{6,20}$/.test(candidate)) return undefined;
  return candidate.startsWith('+') ? candidate : `+${candidate}`;
}

/**
 * The message body for an inbound message, or undefined for events that are not something the
 * contact said (statuses, account updates, errors): posted as the contact they would put words in
 * the contact's mouth and make the AI Employee answer a delivery receipt.
 */
export function buildConversationMessageBody(delivery: BirdDelivery): ConversationMessageBody | undefined {
  const message = delivery.event.message;
  if (delivery.event.kind !== 'message' || !message) return undefined;
  const ref = message.media;
  const caption = message.text ?? ref?.caption;
  const media = delivery.media;

  if (media && ref) {
    const contentType = media.mimeType ?? ref.mimeType ?? 'application/octet-stream';
    if (ref.kind === 'image' || ref.kind === 'sticker') {
      return { type: 'image', image: { images: [{ mediaUrl: media.url }], text: caption } };
    }
    return {
      type: 'file',
      file: { files: [{ mediaUrl: media.url, contentType, filename: ref.filename }], text: caption },
    };
  }

  if (message.type === 'location') {
    const location = objectOrUndefined(objectOrUndefined(delivery.event.raw)?.location);
    const latitude = finiteNumberOrUndefined(location?.latitude);
    const longitude = finiteNumberOrUndefined(location?.longitude);
    if (latitude !== undefined && longitude !== undefined) {
      const address = textOrUndefined(location?.address);
      const label = textOrUndefined(location?.name);
      return {
        type: 'location',
        location: {
          coordinates: { latitude, longitude },
          location: address || label ? { address, label } : undefined,
        },
      };
    }
  }

  // Everything else (buttons, lists, reactions, contacts, orders, media we could not fetch) is
  // told as text, so the AI Employee still learns that the contact did something.
  // A file we could not fetch for good is named, so the AI can ask for it again.
  const missing = delivery.mediaError && `[${message.type} not received: ${delivery.mediaError}]`;
  return { type: 'text', text: { text: [caption, missing].filter(Boolean).join(' ') || `[${message.type}]` } };
}

export function buildCreateConversationMessage(
  delivery: BirdDelivery,
  body: ConversationMessageBody,
  phoneNumber: string,
  contactParticipantId?: string,
): CreateConversationMessage {
  return {
    participantType: 'contact',
    participantId: contactParticipantId,
    participantContactIdentifierKey: PHONE_IDENTIFIER_KEY,
    participantContactIdentifierValue: phoneNumber,
    addMissingParticipants: true,
    reference: delivery.event.key,
    body,
    ...(delivery.conversation ? { meta: { extraInformation: { conversation: JSON.stringify(delivery.conversation) } } } : {}),
  };
}

export function buildCreateConversation(channelId: string, phoneNumber: string): CreateConversation {
  return {
    channelId,
    participants: [{ type: 'contact', identifierKey: PHONE_IDENTIFIER_KEY, identifierValue: phoneNumber }],
  };
}

export function conversationsOfContactPath(workspaceId: string, phoneNumber: string, channelId: string): string {
  const query = new URLSearchParams({ channelId, status: 'active', limit: '1' });
  return `/workspaces/${encodeURIComponent(workspaceId)}/participants/${PHONE_IDENTIFIER_KEY}/${encodeURIComponent(phoneNumber)}/conversations?${query}`;
}

export function conversationsPath(workspaceId: string): string {
  return `/workspaces/${encodeURIComponent(workspaceId)}/conversations`;
}

export function conversationMessagesPath(workspaceId: string, conversationId: string): string {
  return `${conversationsPath(workspaceId)}/${encodeURIComponent(conversationId)}/messages`;
}

/** The conversation in a Bird conversation object (`{id, featuredParticipants}`), or undefined. */
export function conversationRefOf(conversation: unknown): ConversationRef | undefined {
  const object = objectOrUndefined(conversation);
  const conversationId = textOrUndefined(object?.id);
  if (!conversationId) return undefined;
  const participants = Array.isArray(object?.featuredParticipants) ? object.featuredParticipants : [];
  const contact = participants.map(objectOrUndefined).find((p) => p?.type === 'contact');
  return { conversationId, contactParticipantId: textOrUndefined(contact?.id) };
}

/** The first conversation of a Bird list answer (`{results: [...]}`), or undefined. */
export function firstConversationOf(list: unknown): ConversationRef | undefined {
  const results = objectOrUndefined(list)?.results;
  return Array.isArray(results) && results.length > 0 ? conversationRefOf(results[0]) : undefined;
}
