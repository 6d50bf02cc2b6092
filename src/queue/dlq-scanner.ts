import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Logger } from '../observability/logger';
import { isFifoQueueUrl, UNKNOWN_GROUP } from './fifo';
import { groupOfBody, ownDlqGroup, parkingRecord, withConversationGroup } from './dlq-parking';
import { SQS_MAX_BATCH } from './sqs-batcher';

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
  now?: () => number;
}

/**
 * Reads a DLQ by receiving it: what it received stays in flight until the scan ends, so a receive
 * never returns it twice, then goes back (visibility 0) unless a visit deleted it. On a FIFO DLQ that
 * hold also holds the message's group, hence `separateGroups`.
 */
export class DlqScanner {
  private readonly fifo: boolean;
  private readonly now: () => number;
  /** The DLQ's MessageRetentionPeriod in ms, read once; undefined when it cannot be read (no expiry then). */
  private retentionMs?: Promise<number | undefined>;

  constructor(private readonly options: DlqScannerOptions) {
    this.fifo = isFifoQueueUrl(options.dlqUrl);
    this.now = options.now ?? Date.now;
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
        let setAside = 0;
        for (const message of messages) {
          if (!message.MessageId || !message.ReceiptHandle) continue;
          held.set(message.MessageId, message.ReceiptHandle);
          if (seen.has(message.MessageId)) continue; // the scan outlived the hold and went round
          seen.add(message.MessageId);
          if (this.fifo && (await this.setAside(message, scanOptions))) {
            held.delete(message.MessageId);
            setAside += 1;
            continue;
          }
          fresh.push(message);
        }
        if (fresh.length === 0 && setAside === 0) break;
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
   * FIFO: true when the message is gone and is not to be visited: a moved copy past the retention
   * of the message it copies (SQS would have dropped that one by now), or a message that may share
   * its group, moved into one of its own (the copy, alone, comes in a later receive).
   */
  private async setAside(message: Message, scanOptions: ScanOptions): Promise<boolean> {
    if (await this.pastRetention(message)) {
      const gone = await this.delete([message]).catch(() => new Set<string>());
      this.options.logger?.info({ messageId: message.MessageId }, 'DLQ scan: a moved message reached the retention of its original; deleted as SQS would have');
      return gone.has(message.MessageId ?? '');
    }
    return scanOptions.separateGroups && !ownDlqGroup(message.MessageAttributes) && this.separate(message);
  }

  private async pastRetention(message: Message): Promise<boolean> {
    const since = parkingRecord(message.MessageAttributes)?.dlqSince;
    if (since === undefined) return false;
    const retentionMs = await (this.retentionMs ??= this.readRetention());
    return retentionMs !== undefined && Date.parse(since) + retentionMs <= this.now();
  }

  private async readRetention(): Promise<number | undefined> {
    try {
      const out = await this.options.sqs.send(new GetQueueAttributesCommand({ QueueUrl: this.options.dlqUrl, AttributeNames: ['MessageRetentionPeriod'] }));
      const seconds = Number(out.Attributes?.MessageRetentionPeriod);
      return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined;
    } catch (error) {
      this.options.logger?.warn({ err: error }, 'DLQ scan: could not read the DLQ retention; moved messages are kept until SQS drops them');
      return undefined;
    }
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
          MessageAttributes: withConversationGroup(message.MessageAttributes, { conversationGroup: conversation, formerId: id, dlqSince: this.dlqSince(message) }),
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

  /** When the message reached the DLQ: its parking time, else (moved by the redrive policy) the time SQS reports it sent. */
  private dlqSince(message: Message): Date {
    const parkedAt = Date.parse(parkingRecord(message.MessageAttributes)?.parkedAt ?? '');
    if (Number.isFinite(parkedAt)) return new Date(parkedAt);
    const sentAt = Number(message.Attributes?.SentTimestamp);
    return new Date(Number.isFinite(sentAt) && sentAt > 0 ? sentAt : this.now());
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
