import { randomUUID } from 'node:crypto';

/**
 * SQS FIFO queues. The inbound queue is FIFO when its URL says so (SQS requires the `.fifo`
 * suffix on a FIFO queue's name, and a standard queue may not carry it), so nothing else needs
 * configuring: the ingress then sends each payload to its conversation's message group with the
 * body's sha256 as deduplication id, and the worker runs a group's messages one at a time.
 */
export function isFifoQueueUrl(queueUrl: string | undefined): boolean {
  return queueUrl !== undefined && /\.fifo\/?$/.test(queueUrl);
}

/**
 * High-throughput FIFO (what infra/ declares as well): deduplication and the throughput quota per
 * message group, so conversations do not share the queue-wide 300 messages/s of a plain FIFO queue.
 */
export const HIGH_THROUGHPUT_FIFO_ATTRIBUTES = {
  FifoQueue: 'true',
  DeduplicationScope: 'messageGroup',
  FifoThroughputLimit: 'perMessageGroupId',
} as const;

/** What a send to a FIFO queue needs besides the body. */
export interface FifoSendFields {
  MessageGroupId: string;
  MessageDeduplicationId: string;
}

/**
 * A resend of a message we already have (a DLQ park, a redrive): its group kept, and a fresh
 * deduplication id, since the original id (the body's sha256) would make SQS drop it within 5 min.
 */
export function resendFields(queueUrl: string, groupId: string | undefined): Partial<FifoSendFields> {
  if (!isFifoQueueUrl(queueUrl)) return {};
  return { MessageGroupId: groupId ?? UNKNOWN_GROUP, MessageDeduplicationId: randomUUID() };
}

/** The group of a message that arrived without one (sent to a standard queue before the switch to FIFO). */
export const UNKNOWN_GROUP = 'no-group';
