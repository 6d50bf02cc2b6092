import type { Message } from '@aws-sdk/client-sqs';
import { parkingRecord, PARKING_ATTRIBUTES, REDRIVE_POLICY_REASON } from './dlq-parking';
import { INGRESS_ATTRIBUTES, stringAttribute, type SqsAttributes } from './message';

/** What the operator sees of one DLQ message (CLI, console). */
export interface DlqEntry {
  /** The DLQ MessageId: what `show` and `redrive` take. */
  id: string;
  reason: string;
  eventKey?: string;
  /** The parked event's line (parking attribute), else the ingress's per-line attribute. */
  lineId?: string;
  receivedAt?: string;
  parkedAt?: string;
  /** FIFO DLQ: the conversation (MessageGroupId) it came from and goes back to. */
  groupId?: string;
  /** ApproximateReceiveCount on the DLQ: every list/show counts as one. */
  receiveCount: number;
  bodyBytes: number;
  body: string;
  attributes: SqsAttributes;
}

/** The conversation a DLQ message goes back to: the one its parking record names, else its own group. */
export function conversationOf(message: Message): string | undefined {
  return parkingRecord(message.MessageAttributes)?.groupId ?? message.Attributes?.MessageGroupId;
}

/** Whether the message is the one an operator named: by its MessageId, or the one it had before a scan moved it. */
export function isDlqMessage(message: Message, id: string): boolean {
  return message.MessageId === id || parkingRecord(message.MessageAttributes)?.formerId === id;
}

export function describeDlqMessage(message: Message): DlqEntry {
  const attributes = message.MessageAttributes ?? {};
  const body = message.Body ?? '';
  const record = parkingRecord(attributes);
  return {
    id: message.MessageId ?? '',
    reason: stringAttribute(attributes, PARKING_ATTRIBUTES.reason) ?? REDRIVE_POLICY_REASON,
    eventKey: stringAttribute(attributes, PARKING_ATTRIBUTES.eventKey),
    lineId: stringAttribute(attributes, PARKING_ATTRIBUTES.lineId),
    receivedAt: stringAttribute(attributes, INGRESS_ATTRIBUTES.receivedAt),
    parkedAt: record?.parkedAt || undefined,
    groupId: conversationOf(message),
    receiveCount: Number(message.Attributes?.ApproximateReceiveCount ?? 0),
    bodyBytes: Buffer.byteLength(body, 'utf8'),
    body,
    attributes,
  };
}
