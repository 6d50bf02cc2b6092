import { createHmac } from 'node:crypto';
import type { UnfixableMediaReason } from '../errors';
import type { EventContact, EventKind, MediaKind, OutboundRef, TurnContent } from '../meta/event';
import type { ConversationView } from '../conversation/contact-states';
import type { BirdDelivery } from './delivery';

/** The header carrying `sha256=<hex HMAC-SHA256(flowSigningSecret, raw body)>` on flow requests of lines that have a signing secret. */
export const FLOW_SIGNATURE_HEADER = 'X-Wa-Ingress-Signature-256';

/**
 * What a Bird Flow HTTP trigger receives: the normalised event, addressed by line, with the media
 * as a presigned URL and Meta's original object for anything the normalised fields leave out.
 */
export interface FlowBody {
  /** The event key: the same value as the Idempotency-Key header. */
  reference: string;
  kind: EventKind;
  field: string;
  line: { lineId: string; phoneNumberId?: string };
  /** Never undefined: null when Meta sent no contact (statuses, account events). */
  contact: EventContact | null;
  /** A message in a WhatsApp group (Groups API): the group's id; `contact` is the member who wrote. */
  groupId?: string;
  receivedAt: string;
  /** Meta's timestamp (seconds since epoch, as a string), when the item has one. */
  timestamp?: string;
  message?: {
    id: string;
    type: string;
    text?: string;
    replyToId?: string;
    targetMessageId?: string;
    /** The stored file, or (no url) `error`: why the file could not be fetched; ask the contact to send it again. */
    media?: {
      kind?: MediaKind;
      mimeType?: string;
      filename?: string;
      caption?: string;
    } & ({ url: string; sha256: string; size: number; s3Key: string } | { error: UnfixableMediaReason });
  };
  status?: { id: string; status: string; recipientId?: string };
  error?: { code?: number; title?: string };
  /** Statuses of a reply the gateway sent, and `outbound_failed`: which reply (id and the caller's idempotency key). */
  outbound?: OutboundRef;
  /** kind `turn`: the burst's messages, each the FlowBody it would have been alone. */
  turn?: TurnContent;
  /** Messages, turns and conversation events: the window, the pause and the stable contact id (src/conversation). */
  conversation?: ConversationView;
  raw: unknown;
}

export function buildFlowBody(delivery: BirdDelivery): FlowBody {
  const { event, media, mediaError } = delivery;
  const body: FlowBody = {
    reference: event.key,
    kind: event.kind,
    field: event.field,
    line: { lineId: delivery.lineId, phoneNumberId: event.phoneNumberId },
    contact: event.contact ?? null,
    ...(event.groupId !== undefined ? { groupId: event.groupId } : {}),
    receivedAt: delivery.receivedAt,
    timestamp: event.timestamp,
    raw: event.raw,
  };
  if (event.message) {
    const ref = event.message.media;
    body.message = {
      id: event.message.id,
      type: event.message.type,
      // A caption is what the user wrote next to the picture: the AI reads it as the text.
      text: event.message.text ?? ref?.caption,
      replyToId: event.message.replyToId,
      targetMessageId: event.message.targetMessageId,
      media: media
        ? {
            kind: ref?.kind,
            url: media.url,
            mimeType: media.mimeType ?? ref?.mimeType,
            sha256: media.sha256,
            size: media.size,
            s3Key: media.s3Key,
            filename: ref?.filename,
            caption: ref?.caption,
          }
        : mediaError && { kind: ref?.kind, mimeType: ref?.mimeType, filename: ref?.filename, caption: ref?.caption, error: mediaError },
    };
  }
  if (event.status) body.status = { ...event.status };
  if (event.error) body.error = { ...event.error };
  if (event.outbound) body.outbound = { ...event.outbound };
  if (event.turn) body.turn = event.turn;
  if (delivery.conversation) body.conversation = delivery.conversation;
  return body;
}

/** Serialised once: the signature covers exactly these bytes, and exactly these bytes are sent. */
export function encodeFlowBody(body: FlowBody): Buffer {
  return Buffer.from(JSON.stringify(body), 'utf8');
}

export function signFlowBody(secret: string, rawBody: Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`;
}
