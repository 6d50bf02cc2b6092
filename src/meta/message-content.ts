import type { MediaKind, MediaRef } from './event';
import { type JsonObject, objectOrUndefined, textOrUndefined } from './untrusted-json';

/**
 * What an inbound message says, per Meta message type: the human text (for the AI to read), the
 * media to fetch, and the earlier message it acts on. Everything else stays in the event's raw.
 */

export const MEDIA_KINDS: readonly MediaKind[] = ['image', 'audio', 'video', 'document', 'sticker'];

export function isMediaKind(type: string): type is MediaKind {
  return (MEDIA_KINDS as readonly string[]).includes(type);
}

/**
 * Message types Meta documents (CONTRACT.md §4). `unsupported` and its older name `unknown` are
 * Meta's own way of saying "the user sent something the API cannot show" (polls, …): they are
 * still a user's message, so the AI can answer "I cannot open that". Any other type is new to
 * us and becomes an `unknown` event.
 */
const KNOWN_MESSAGE_TYPES: ReadonlySet<string> = new Set([
  'text',
  ...MEDIA_KINDS,
  'location',
  'contacts',
  'interactive',
  'button',
  'reaction',
  'order',
  'system',
  'edit',
  'revoke',
  'unsupported',
  'unknown',
]);

export function isKnownMessageType(type: string): boolean {
  return KNOWN_MESSAGE_TYPES.has(type);
}

export interface MessageContent {
  text?: string;
  media?: MediaRef;
  targetMessageId?: string;
}

/**
 * Text choices: what a person wrote or chose and can read back. Button ids, template payloads,
 * flow response_json and coordinates are machine data and stay in raw. A removed reaction (no
 * emoji, or "") has no text.
 */
export function messageContent(type: string, message: JsonObject): MessageContent {
  if (isMediaKind(type)) {
    const body = objectOrUndefined(message[type]);
    return { text: textOrUndefined(body?.caption), media: mediaRef(type, body) };
  }
  switch (type) {
    case 'text':
      return { text: textOrUndefined(objectOrUndefined(message.text)?.body) };
    case 'button':
      return { text: textOrUndefined(objectOrUndefined(message.button)?.text) };
    case 'interactive':
      return { text: interactiveText(objectOrUndefined(message.interactive)) };
    case 'reaction': {
      const reaction = objectOrUndefined(message.reaction);
      return {
        text: textOrUndefined(reaction?.emoji),
        targetMessageId: textOrUndefined(reaction?.message_id),
      };
    }
    case 'location':
      return { text: locationText(objectOrUndefined(message.location)) };
    case 'contacts':
      return { text: sharedContactsText(message.contacts) };
    case 'order':
      return { text: textOrUndefined(objectOrUndefined(message.order)?.text) };
    case 'system':
      return { text: textOrUndefined(objectOrUndefined(message.system)?.body) };
    case 'edit':
      return editContent(objectOrUndefined(message.edit));
    case 'revoke':
      return {
        targetMessageId: textOrUndefined(objectOrUndefined(message.revoke)?.original_message_id),
      };
    default:
      return {};
  }
}

function mediaRef(kind: MediaKind, body: JsonObject | undefined): MediaRef | undefined {
  const id = textOrUndefined(body?.id);
  // Without an id there is nothing to fetch; the caption (if any) is still kept as text.
  if (!body || !id) return undefined;
  return {
    kind,
    id,
    mimeType: textOrUndefined(body.mime_type),
    sha256: textOrUndefined(body.sha256),
    filename: textOrUndefined(body.filename),
    caption: textOrUndefined(body.caption),
  };
}

function interactiveText(interactive: JsonObject | undefined): string | undefined {
  const type = textOrUndefined(interactive?.type);
  if (!interactive || !type) return undefined;
  const reply = objectOrUndefined(interactive[type]);
  switch (type) {
    case 'button_reply':
    case 'list_reply':
      return textOrUndefined(reply?.title);
    case 'nfm_reply':
      // The flow's answers are in response_json (machine data); body is the label shown to the user.
      return textOrUndefined(reply?.body);
    default:
      return undefined;
  }
}

function locationText(location: JsonObject | undefined): string | undefined {
  const lines = [textOrUndefined(location?.name), textOrUndefined(location?.address)].filter(
    (line): line is string => line !== undefined,
  );
  return lines.length > 0 ? lines.join('\n') : undefined;
}

function sharedContactsText(cards: unknown): string | undefined {
  if (!Array.isArray(cards)) return undefined;
  const names = cards
    .map((card) => textOrUndefined(objectOrUndefined(objectOrUndefined(card)?.name)?.formatted_name))
    .filter((name): name is string => name !== undefined);
  return names.length > 0 ? names.join('\n') : undefined;
}

/**
 * An edit carries the whole replacement message; its text and media are what the user now
 * shows. Only one level is read: an edit of an edit is not something Meta sends.
 */
function editContent(edit: JsonObject | undefined): MessageContent {
  const targetMessageId = textOrUndefined(edit?.original_message_id);
  const replacement = objectOrUndefined(edit?.message);
  const replacementType = textOrUndefined(replacement?.type);
  if (!replacement || !replacementType || replacementType === 'edit') return { targetMessageId };
  const { text, media } = messageContent(replacementType, replacement);
  return { text, media, targetMessageId };
}
