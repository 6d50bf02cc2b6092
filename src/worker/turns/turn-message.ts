import type { FlowBody } from '../../bird/flow-request';
import type { TurnPolicy } from '../../lines/line';
import type { EventContact, TurnCut, WhatsAppEvent } from '../../meta/event';
import { objectOrUndefined, textOrUndefined } from '../../meta/untrusted-json';

/**
 * The wire contract of a turn: what the turn buffer puts on the inbound queue when it cuts a turn,
 * in the conversation's FIFO group, and what the pipeline reads back as one `turn` event. Pure.
 * The ingress never enqueues this object: a webhook whose `object` is not Meta's is answered
 * `ignored`, so only the worker writes it.
 */
export const TURN_OBJECT = 'wa-ingress.turn';

export interface TurnMessage {
  object: typeof TURN_OBJECT;
  turn: {
    id: string;
    /** Dedupe and Idempotency-Key of the turn: `turn#<lineId>#<turnId>`. */
    key: string;
    lineId: string;
    phoneNumberId: string;
    contact: EventContact | null;
    cut: TurnCut;
    /** Meta's timestamp of the last message. */
    timestamp?: string;
    /** Each message as the flow would have received it alone (FlowBody JSON, media by S3 key: see bufferedBody), in order. */
    messages: unknown[];
  };
}

export function turnKey(lineId: string, turnId: string): string {
  return `turn#${lineId}#${turnId}`;
}

/**
 * A message as the buffer keeps it: its FlowBody with the media's S3 key but without the presigned
 * URL. A URL signed at buffering time is dead when a late, retried or redriven turn reaches Bird
 * (MEDIA_URL_TTL_SECONDS, or the signing credentials rotated): the turn is signed when delivered.
 */
export function bufferedBody(body: FlowBody): unknown {
  const media = body.message?.media;
  if (!media || !('url' in media)) return body;
  const { url: _url, ...unsigned } = media;
  return { ...body, message: { ...body.message!, media: unsigned } };
}

/** The turn's messages with each stored file linked by a URL `presign` signs now (from its S3 key). */
export async function withMediaUrls(messages: unknown[], presign: (s3Key: string) => Promise<string>): Promise<unknown[]> {
  return Promise.all(
    messages.map(async (item) => {
      const message = objectOrUndefined(objectOrUndefined(item)?.message);
      const media = objectOrUndefined(message?.media);
      const s3Key = textOrUndefined(media?.s3Key);
      if (!s3Key) return item;
      return { ...objectOrUndefined(item), message: { ...message, media: { ...media, url: await presign(s3Key) } } };
    }),
  );
}

/** The one `turn` event of a turn message, or undefined when the payload is not one (a Meta webhook). */
export function turnEvents(payload: unknown): WhatsAppEvent[] | undefined {
  const message = objectOrUndefined(payload);
  if (message?.object !== TURN_OBJECT) return undefined;
  const turn = objectOrUndefined(message.turn);
  const key = textOrUndefined(turn?.key);
  const id = textOrUndefined(turn?.id);
  if (!turn || !key || !id || !Array.isArray(turn.messages)) return undefined;
  const cut = (['quiet', 'max_wait', 'max_messages'] as const).find((c) => c === turn.cut) ?? 'quiet';
  return [
    {
      key,
      kind: 'turn',
      field: 'messages',
      phoneNumberId: textOrUndefined(turn.phoneNumberId),
      timestamp: textOrUndefined(turn.timestamp),
      contact: (objectOrUndefined(turn.contact) as EventContact | undefined) ?? undefined,
      // A group's turn is the group's (its buffer is keyed by it): no read receipt, the group's state.
      ...groupOf(turn.messages),
      turn: { id, cut, messages: turn.messages },
      raw: null,
    },
  ];
}

function groupOf(messages: unknown[]): { groupId?: string } {
  const groupId = textOrUndefined(objectOrUndefined(messages[0])?.groupId);
  return groupId === undefined ? {} : { groupId };
}

/**
 * The message read marks and the typing indicator are about: the event itself, or for a turn its
 * last message (marking it read marks the ones before it read too).
 */
export function presenceTarget(event: WhatsAppEvent): WhatsAppEvent {
  if (event.kind !== 'turn') return event;
  const last = objectOrUndefined(event.turn?.messages.at(-1));
  const message = objectOrUndefined(last?.message);
  const id = textOrUndefined(message?.id);
  if (!id) return event;
  return { ...event, kind: 'message', message: { id, type: textOrUndefined(message?.type) ?? 'text' } };
}

/** What the buffer knows of a turn in progress (epoch ms). */
export interface TurnClock {
  firstAt: number;
  lastAt: number;
  count: number;
}

/**
 * Is the turn due, and why: the contact has been quiet for quietMs, or maxWaitMs have passed since
 * the first message, or it holds maxMessages. Otherwise when to look again.
 */
export function turnDue(turn: TurnClock, policy: TurnPolicy, now: number): { cut: TurnCut } | { nextAt: number } {
  if (turn.count >= policy.maxMessages) return { cut: 'max_messages' };
  const quietAt = turn.lastAt + policy.quietMs;
  const maxAt = turn.firstAt + policy.maxWaitMs;
  if (now >= maxAt && maxAt < quietAt) return { cut: 'max_wait' };
  if (now >= quietAt) return { cut: 'quiet' };
  if (now >= maxAt) return { cut: 'max_wait' };
  return { nextAt: Math.min(quietAt, maxAt) };
}
