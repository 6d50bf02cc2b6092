/**
 * The normalised event: one per entry × change × message / status / error, or one per
 * non-message change (account events). Produced by pure functions in src/meta, consumed by
 * the worker pipeline, dedupe and the Bird client.
 */
export type EventKind = 'message' | 'status' | 'error' | 'account' | 'unknown' | 'outbound_failed' | 'turn';

/** A reply the gateway sent (see src/outbound): carried by its statuses and by `outbound_failed`. */
export interface OutboundRef {
  id: string;
  idempotencyKey: string;
}

/** Why a turn was sent when it was (src/worker/turns). */
export type TurnCut = 'quiet' | 'max_wait' | 'max_messages';

/**
 * A burst of messages from one contact on a line with `turn` set: each message exactly as the flow
 * would have received it alone (its FlowBody, media included), in order.
 */
export interface TurnContent {
  id: string;
  cut: TurnCut;
  /** FlowBody of each message (src/bird/flow-request.ts), kept as JSON. */
  messages: unknown[];
}

export type MediaKind = 'image' | 'audio' | 'video' | 'document' | 'sticker';

export interface EventContact {
  /** `from ?? from_user_id` (2026 BSUID rollout: `from`/`wa_id` may be missing). */
  userKey?: string;
  waId?: string;
  userId?: string;
  name?: string;
  username?: string;
}

export interface MediaRef {
  kind: MediaKind;
  id: string;
  mimeType?: string;
  /** As sent in the webhook; base64 in practice. */
  sha256?: string;
  filename?: string;
  caption?: string;
}

export interface WhatsAppEvent {
  /** Dedupe and idempotency key: `msg#<phone_number_id>#<wamid>`, `status#<wamid>#<status>`, or a content hash. */
  key: string;
  kind: EventKind;
  /** `change.field` (e.g. `messages`, `account_update`). */
  field: string;
  /** `entry.id`: the WABA, never used for routing. */
  wabaId?: string;
  /** `value.metadata.phone_number_id`: what routes the event to a line. */
  phoneNumberId?: string;
  displayPhoneNumber?: string;
  /** Meta's timestamp (seconds since epoch, as a string) when the item has one. */
  timestamp?: string;
  contact?: EventContact;
  /** A message in a WhatsApp group (Groups API): the group is the conversation, `contact` the member who wrote. */
  groupId?: string;
  message?: {
    id: string;
    type: string;
    text?: string;
    media?: MediaRef;
    /** `context.id`: the message this one replies to. */
    replyToId?: string;
    /** The message this one acts on: `reaction.message_id`, `edit`/`revoke.original_message_id`. */
    targetMessageId?: string;
  };
  status?: {
    id: string;
    status: string;
    recipientId?: string;
    /** Group messages: the member this receipt is from (`recipient_participant_user_id ?? recipient_participant_id`). */
    participant?: string;
  };
  /** For `error` events: what Meta reported, so operators can count and alert on codes. */
  error?: {
    code?: number;
    title?: string;
  };
  /** Statuses of a reply the gateway sent, and `outbound_failed` (a reply Meta refused for good). */
  outbound?: OutboundRef;
  /** For `turn` events: the messages of the burst. */
  turn?: TurnContent;
  /** The original Meta object (message, status, error, or the change value), untouched. */
  raw: unknown;
}
