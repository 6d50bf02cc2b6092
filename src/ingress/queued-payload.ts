import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { MessageAttributeValue, SendMessageBatchRequestEntry } from '@aws-sdk/client-sqs';
import type { InboundRoute } from '../meta/conversation';
import type { ClaimCheckPointer } from '../queue/claim-check-writer';

/**
 * The SQS side of one ingress payload, pure: what it is sent as, to which FIFO group(s), and whether
 * its body must go to S3 first. The producer (producer.ts) does the I/O.
 */

/** What the ingress hands to the queue: the POST body byte for byte, and its attributes. */
export interface Payload {
  body: Buffer;
  attributes: Record<string, string>;
  /**
   * FIFO only (unused on a standard queue): the MessageGroupId(s) it goes to, from inboundRoutes
   * (src/meta/conversation.ts). A payload split by lane goes once per route, the same bytes each time.
   */
  routes?: InboundRoute[];
  /** Prefixes the FIFO deduplication id (a replay run's), so SQS does not drop it as a repeat of the original. */
  deduplicationScope?: string;
}

/** One SQS message of a payload, as the batcher holds it until its SendMessageBatch. */
export interface QueuedMessage {
  body: string;
  attributes: Record<string, MessageAttributeValue>;
  /** Counted towards SendMessageBatch's 1 MiB. */
  bytes: number;
  fifo?: { groupId: string; deduplicationId: string };
}

/** Characters SQS accepts in a message body (anything else is refused by SendMessage). */
const SQS_REFUSED_CHARS = /[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

export interface PreparedPayload {
  sha256: string;
  deduplicationScope?: string;
  attributes: Record<string, string>;
  /** The body as SQS carries it, when it can; undefined: it goes to S3 (too big, or not sendable as an SQS string). */
  inlineBody?: string;
}

export function preparePayload(payload: Payload, claimCheckThresholdBytes: number): PreparedPayload {
  const sha256 = payload.attributes.bodySha256 ?? createHash('sha256').update(payload.body).digest('hex');
  const attributes: Record<string, string> = { ...payload.attributes, bodySha256: sha256 };
  const tooBig = payload.body.length + attributeBytes(attributes) > claimCheckThresholdBytes;
  // A body that is not valid UTF-8 would not survive as an SQS string byte for byte.
  const body = !tooBig && isUtf8(payload.body) ? payload.body.toString('utf8') : undefined;
  const sendable = body !== undefined && !SQS_REFUSED_CHARS.test(body);
  return { sha256, attributes, deduplicationScope: payload.deduplicationScope, ...(sendable ? { inlineBody: body } : {}) };
}

/** What a payload's body travels as: itself, or the pointer to its copy in S3. */
export interface CarriedBody {
  body: string;
  pointer?: ClaimCheckPointer;
}

/** The SQS message of one route (FIFO) or of the whole payload (standard queue: `route` undefined). */
export function queuedMessage(prepared: PreparedPayload, carried: CarriedBody, route: InboundRoute | undefined): QueuedMessage {
  const attributes: Record<string, string> = { ...prepared.attributes };
  if (carried.pointer) attributes.claimCheck = `s3://${carried.pointer.claimCheck.bucket}/${carried.pointer.claimCheck.key}`;
  if (route?.lane) attributes.lane = route.lane;
  const messageAttributes: Record<string, MessageAttributeValue> = {};
  for (const [name, value] of Object.entries(attributes)) messageAttributes[name] = { DataType: 'String', StringValue: value };
  return {
    body: carried.body,
    attributes: messageAttributes,
    bytes: Buffer.byteLength(carried.body) + attributeBytes(attributes),
    ...(route ? { fifo: { groupId: route.groupId, deduplicationId: deduplicationId(prepared.sha256, route, prepared.deduplicationScope) } } : {}),
  };
}

/**
 * The body's sha256, so Meta's repeats of a POST within 5 minutes are dropped by SQS. The status
 * copy of a split payload gets its own (on a queue deduplicating queue-wide, not per group, the
 * shared id would drop one of the two copies).
 */
export function deduplicationId(sha256: string, route: InboundRoute, scope?: string): string {
  const id = route.lane === 'statuses' ? `${sha256}:statuses` : sha256;
  return scope ? `${scope}:${id}` : id;
}

export function sendBatchEntry(message: QueuedMessage & { Id: string }): SendMessageBatchRequestEntry {
  return {
    Id: message.Id,
    MessageBody: message.body,
    MessageAttributes: message.attributes,
    ...(message.fifo ? { MessageGroupId: message.fifo.groupId, MessageDeduplicationId: message.fifo.deduplicationId } : {}),
  };
}

function attributeBytes(attributes: Record<string, string>): number {
  return Object.entries(attributes).reduce((n, [k, v]) => n + k.length + Buffer.byteLength(v) + 6, 0);
}
