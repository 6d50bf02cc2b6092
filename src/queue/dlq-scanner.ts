import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Logger } from '../observability/logger';
import { isFifoQueueUrl, UNKNOWN_GROUP } from './fifo';
import { INGRESS_ATTRIBUTES, stringAttribute, type SqsAttributes } from './message';
import { groupOfBody, ownDlqGroup, parkingRecord, PARKING_ATTRIBUTES, REDRIVE_POLICY_REASON, withConversationGroup } from './dlq-parking';
import { SQS_MAX_BATCH } from './sqs-batcher';

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

/** What a visit of one batch did: the messages it deleted (no longer held), and whether the scan is over. */
export interface VisitResult {
  consumed: string[];
  stop: boolean;
}

export interface ScanOptions {
  /**
   * FIFO DLQ: move a message that may share its DLQ group (moved there by the redrive policy, or
   * parked before groups of their own) into a group of its own before visiting it, so the scan
   * reaches the messages behind it. Off for a scan that deletes what it visits (redrive all, purge):
   * the delete frees the group, and the conversation's order is kept.
   */
  separateGroups: boolean;
}

export interface DlqScannerOptions {
  sqs: SQSClient;
  dlqUrl: string;
  holdSeconds: number;
  waitTimeSeconds: number;
  maxMessages: number;
  logger?: Logger;
}

/**
 * Reads a DLQ by receiving it: what it received stays in flight until the scan ends, so a receive
 * never returns it twice, then goes back (visibility 0) unless a visit deleted it. On a FIFO DLQ that
 * hold also holds the message's group, hence `separateGroups`.
 */
export class DlqScanner {
  private readonly fifo: boolean;

  constructor(private readonly options: DlqScannerOptions) {
    this.fifo = isFifoQueueUrl(options.dlqUrl);
  }

  /**
   * Receive batch by batch until a receive comes back empty (or only with messages already seen),
   * hand each new batch to `visit` with the receipt handles of that receive (the latest), then make
   * every message `visit` did not consume visible again at once.
   */
  async scan(visit: (batch: Message[]) => Promise<VisitResult>, scanOptions: ScanOptions): Promise<void> {
    const held = new Map<string, string>();
    const seen = new Set<string>();
    let visited = 0;
    try {
      while (visited < this.options.maxMessages) {
        const messages = await this.receive();
        if (messages.length === 0) break;
        const fresh: Message[] = [];
        let separated = 0;
        for (const message of messages) {
          if (!message.MessageId || !message.ReceiptHandle) continue;
          held.set(message.MessageId, message.ReceiptHandle);
          if (seen.has(message.MessageId)) continue; // the scan outlived the hold and went round
          seen.add(message.MessageId);
          if (scanOptions.separateGroups && this.fifo && !ownDlqGroup(message.MessageAttributes) && (await this.separate(message))) {
            held.delete(message.MessageId);
            separated += 1; // its copy, alone in its group, comes in a later receive
            continue;
          }
          fresh.push(message);
        }
        if (fresh.length === 0 && separated === 0) break;
        if (fresh.length === 0) continue;
        visited += fresh.length;
        const { consumed, stop } = await visit(fresh);
        for (const id of consumed) held.delete(id);
        if (stop) break;
      }
    } finally {
      await this.release([...held.values()]);
    }
  }

  /** Delete with the receipt handles of the scan's receive; returns the ids deleted. */
  async delete(messages: Message[]): Promise<Set<string>> {
    const deleted = new Set<string>();
    for (let i = 0; i < messages.length; i += SQS_MAX_BATCH) {
      const chunk = messages.slice(i, i + SQS_MAX_BATCH);
      const out = await this.options.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.options.dlqUrl,
          Entries: chunk.map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle ?? '' })),
        }),
      );
      for (const ok of out.Successful ?? []) {
        const id = chunk[Number(ok.Id)]?.MessageId;
        if (id) deleted.add(id);
      }
    }
    return deleted;
  }

  private async receive(): Promise<Message[]> {
    const out = await this.options.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: this.options.dlqUrl,
        MaxNumberOfMessages: SQS_MAX_BATCH,
        WaitTimeSeconds: this.options.waitTimeSeconds,
        VisibilityTimeout: this.options.holdSeconds,
        MessageSystemAttributeNames: ['All'],
        AttributeNames: ['All'], // local-aws-sqs reads only the deprecated name
        MessageAttributeNames: ['All'],
      }),
    );
    return out.Messages ?? [];
  }

  /**
   * Copy the message into a DLQ group of its own (its conversation kept in the parking record), then
   * delete it, which frees its old group. Done once per message: the copy is alone for good. The
   * deduplication id, derived from the old MessageId, drops a repeat within SQS's 5 minutes when the
   * delete failed and a later scan tries again. False when the message stays where it was.
   */
  private async separate(message: Message): Promise<boolean> {
    const id = message.MessageId ?? '';
    const ownGroup = `dlq-${id}`;
    const conversation = message.Attributes?.MessageGroupId ?? groupOfBody(message.Body ?? '') ?? UNKNOWN_GROUP;
    try {
      await this.options.sqs.send(
        new SendMessageCommand({
          QueueUrl: this.options.dlqUrl,
          MessageBody: message.Body ?? '',
          MessageAttributes: withConversationGroup(message.MessageAttributes, conversation, id),
          MessageGroupId: ownGroup,
          MessageDeduplicationId: ownGroup,
        }),
      );
    } catch (error) {
      this.options.logger?.warn({ err: error, messageId: id }, 'DLQ scan: could not move a message into its own group; the messages behind it stay out of reach');
      return false;
    }
    const deleted = await this.delete([message]).catch(() => new Set<string>());
    // Not deleted: both copies are listed, and a redrive of both is absorbed by dedupe.
    return deleted.has(id);
  }

  private async release(receiptHandles: string[]): Promise<void> {
    for (let i = 0; i < receiptHandles.length; i += SQS_MAX_BATCH) {
      const chunk = receiptHandles.slice(i, i + SQS_MAX_BATCH);
      // Best effort: what is not released turns visible by itself after holdSeconds.
      await this.options.sqs
        .send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: this.options.dlqUrl,
            Entries: chunk.map((ReceiptHandle, j) => ({ Id: String(j), ReceiptHandle, VisibilityTimeout: 0 })),
          }),
        )
        .catch(() => undefined);
    }
  }
}
