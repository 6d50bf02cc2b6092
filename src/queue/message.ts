import type { MessageAttributeValue } from '@aws-sdk/client-sqs';
import { z } from 'zod';
import type { ClaimCheckPointer as IngressClaimCheckPointer } from './claim-check-writer';

/**
 * The SQS message the ingress produces: the Meta POST body byte for byte (or, when it is too big
 * for SQS, a claim-check pointer to S3) plus these String message attributes.
 */
export const INGRESS_ATTRIBUTES = {
  receivedAt: 'receivedAt',
  requestId: 'requestId',
  lineId: 'lineId',
  bodySha256: 'bodySha256',
  traceparent: 'traceparent',
  claimCheck: 'claimCheck',
  lane: 'lane',
} as const;

/**
 * Added by DLQ parking (src/queue/dlq.ts) and kept by the redrive: the one parked event of the
 * payload that a redriven message may deliver. The worker skips every other event of such a
 * message, whatever its dedupe record says (the record may have expired in the 14 days the DLQ
 * keeps the message).
 */
export const REDRIVE_ATTRIBUTES = {
  eventKey: 'eventKey',
} as const;

export interface IngressAttributes {
  /** ISO timestamp of the ingress accepting the POST. */
  receivedAt?: string;
  requestId?: string;
  /** Only on per-line webhook URLs (`/webhooks/whatsapp/:lineId`). */
  lineId?: string;
  /** Hex sha256 of the real body (not of a claim-check pointer). */
  bodySha256?: string;
  traceparent?: string;
  /** `s3://<bucket>/<key>` when the body is a claim-check pointer. */
  claimCheck?: string;
  /** FIFO, a payload mixing messages and statuses: the part this copy carries (InboundLane, src/meta/conversation.ts). */
  lane?: string;
  /** Only on a DLQ redrive of one parked event (REDRIVE_ATTRIBUTES). */
  eventKey?: string;
}

/** SQS message attributes as they travel: what we receive is what the DLQ parker and the redrive send again. */
export type SqsAttributes = Record<string, MessageAttributeValue>;

/** What the worker's handler gets: the real body bytes and the parsed ingress attributes. */
export interface ReceivedMessage {
  messageId: string;
  /** SQS ApproximateReceiveCount: 1 on the first delivery. */
  receiveCount: number;
  /** FIFO queues: the conversation's MessageGroupId (src/meta/conversation.ts); undefined on a standard queue. */
  groupId?: string;
  /** The Meta POST body, claim check already resolved and verified. */
  body: Buffer;
  attributes: IngressAttributes;
  /** The message as it stands on SQS (pointer body included): what `DlqParker.park` takes. */
  original: { body: string; attributes: SqsAttributes };
}

export function stringAttribute(attributes: SqsAttributes | undefined, name: string): string | undefined {
  const value = attributes?.[name];
  return value?.DataType?.startsWith('String') ? value.StringValue : undefined;
}

export function parseIngressAttributes(attributes: SqsAttributes | undefined): IngressAttributes {
  const parsed: IngressAttributes = {};
  for (const name of [...Object.values(INGRESS_ATTRIBUTES), ...Object.values(REDRIVE_ATTRIBUTES)]) {
    const value = stringAttribute(attributes, name);
    if (value !== undefined) parsed[name] = value;
  }
  return parsed;
}

/**
 * Keep only what SendMessage accepts back: the received shape also carries empty list fields
 * (StringListValues, BinaryListValues) that SQS rejects as "not implemented".
 */
export function sendableAttributes(attributes: SqsAttributes | undefined): SqsAttributes {
  const out: SqsAttributes = {};
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (!value?.DataType) continue;
    if (value.StringValue !== undefined) out[name] = { DataType: value.DataType, StringValue: value.StringValue };
    else if (value.BinaryValue !== undefined) out[name] = { DataType: value.DataType, BinaryValue: value.BinaryValue };
  }
  return out;
}

export function stringAttributes(values: Record<string, string | undefined>): SqsAttributes {
  const out: SqsAttributes = {};
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined) out[name] = { DataType: 'String', StringValue: value };
  }
  return out;
}

/** The ingress's pointer body (src/queue/claim-check-writer.ts), validated: the worker trusts nothing it did not check. */
const pointerSchema: z.ZodType<IngressClaimCheckPointer> = z.object({
  claimCheck: z.object({
    bucket: z.string().min(1),
    key: z.string().min(1),
    sha256: z.string().regex(/^[0-9a-f]{64}$/i),
    size: z.number().int().nonnegative(),
  }),
});

export type ClaimCheckPointer = IngressClaimCheckPointer['claimCheck'];

/** The pointer body the ingress sends instead of an oversize Meta body; undefined if `body` is not one. */
export function parseClaimCheckPointer(body: string): ClaimCheckPointer | undefined {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return undefined;
  }
  const parsed = pointerSchema.safeParse(json);
  return parsed.success ? parsed.data.claimCheck : undefined;
}
