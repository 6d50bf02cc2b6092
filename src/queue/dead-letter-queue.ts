import { SendMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { PermanentReason } from '../errors';
import type { Logger } from '../observability/logger';
import { groupOfBody, unparkedAttributes } from './dlq-parking';
import { conversationOf, describeDlqMessage, isDlqMessage, type DlqEntry } from './dlq-entry';
import { DlqScanner } from './dlq-scanner';
import { isFifoQueueUrl, UNKNOWN_GROUP } from './fifo';
import { INGRESS_ATTRIBUTES, parseClaimCheckPointer, stringAttribute, type ClaimCheckPointer } from './message';

export interface DeadLetterQueueOptions {
  sqs: SQSClient;
  /** Where redriven messages go. */
  queueUrl: string;
  dlqUrl: string;
  /**
   * Reading the DLQ means receiving: the messages turn invisible for this long. Released at once
   * when the command ends; only a crash mid-command leaves them hidden, and only this long.
   */
  holdSeconds?: number;
  /** Long-poll wait per receive; an empty receive ends a scan. */
  waitTimeSeconds?: number;
  /** Stop a scan after this many messages. */
  maxMessages?: number;
  /** Refreshes the S3 object of a claim-checked message before its redrive (see S3ClaimCheckRefresher). */
  claimChecks?: { refresh(pointer: ClaimCheckPointer): Promise<void> };
  /** A reason not to redrive a message (`erased`: src/privacy/erasure/redrive-guard.ts); it stays in the DLQ, listed as failed. */
  refuse?: (message: Message) => Promise<PermanentReason | undefined>;
  logger?: Logger;
  now?: () => number;
}

export type RedriveSelector = { id: string } | { all: true };

export interface RedriveResult {
  redriven: string[];
  /** Sent to the main queue but not deleted from the DLQ: it will flow twice (dedupe absorbs it). */
  notDeleted: string[];
  failed: { id: string; error: string }[];
}

/** The operator's view of the DLQ: list, show, redrive, purge. */
export class DeadLetterQueue {
  private readonly sqs: SQSClient;
  private readonly queueUrl: string;
  private readonly scanner: DlqScanner;
  private readonly claimChecks?: DeadLetterQueueOptions['claimChecks'];
  private readonly refuse?: DeadLetterQueueOptions['refuse'];

  constructor(options: DeadLetterQueueOptions) {
    this.sqs = options.sqs;
    this.queueUrl = options.queueUrl;
    this.claimChecks = options.claimChecks;
    this.refuse = options.refuse;
    this.scanner = new DlqScanner({
      sqs: options.sqs,
      dlqUrl: options.dlqUrl,
      holdSeconds: options.holdSeconds ?? 30,
      waitTimeSeconds: options.waitTimeSeconds ?? 1,
      maxMessages: options.maxMessages ?? 1000,
      logger: options.logger,
      now: options.now,
    });
  }

  async list(): Promise<DlqEntry[]> {
    const entries: DlqEntry[] = [];
    await this.scanner.scan(
      async (batch) => {
        entries.push(...batch.map(describeDlqMessage));
        return { consumed: [], stop: false };
      },
      { separateGroups: true },
    );
    return entries;
  }

  async show(id: string): Promise<DlqEntry | undefined> {
    let found: DlqEntry | undefined;
    await this.scanner.scan(
      async (batch) => {
        const message = batch.find((m) => isDlqMessage(m, id));
        if (message) found = describeDlqMessage(message);
        return { consumed: [], stop: found !== undefined };
      },
      { separateGroups: true },
    );
    return found;
  }

  /**
   * Back to the main queue with the original body and ingress attributes, then off the DLQ. By id:
   * found by a scan that reaches behind shared groups, and acted on with the receipt handle of the
   * receive that found it. All: each batch in the order it was parked; deleting a message frees its
   * group, so a conversation the redrive policy moved goes back in its order.
   */
  async redrive(selector: RedriveSelector): Promise<RedriveResult> {
    const result: RedriveResult = { redriven: [], notDeleted: [], failed: [] };
    await this.scanner.scan(
      async (batch) => {
        const chosen = 'id' in selector ? batch.filter((m) => isDlqMessage(m, selector.id)) : inParkingOrder(batch);
        const sent: Message[] = [];
        // One SendMessage each: bodies reach ~1 MiB, so a 10-entry batch would break SQS's 1 MiB batch cap.
        for (const message of chosen) {
          try {
            const refusal = await this.refuse?.(message);
            if (refusal) {
              result.failed.push({ id: message.MessageId ?? '', error: refusal });
              continue;
            }
            await this.sendBack(message);
            sent.push(message);
          } catch (error) {
            result.failed.push({ id: message.MessageId ?? '', error: (error as Error).message });
          }
        }
        const deleted = await this.scanner.delete(sent);
        for (const message of sent) {
          const id = message.MessageId ?? '';
          result.redriven.push(id);
          if (!deleted.has(id)) result.notDeleted.push(id);
        }
        return { consumed: [...deleted], stop: 'id' in selector && chosen.length > 0 };
      },
      { separateGroups: 'id' in selector },
    );
    return result;
  }

  /**
   * Delete every message in the DLQ; returns how many. Receive + delete rather than PurgeQueue:
   * PurgeQueue runs asynchronously for up to 60 s, is allowed once a minute and counts nothing.
   */
  async purge(): Promise<number> {
    let purged = 0;
    await this.scanner.scan(
      async (batch) => {
        const deleted = await this.scanner.delete(batch);
        purged += deleted.size;
        return { consumed: [...deleted], stop: false };
      },
      { separateGroups: false },
    );
    return purged;
  }

  private async sendBack(message: Message): Promise<void> {
    await this.refreshClaimCheck(message);
    await this.sqs.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: message.Body ?? '',
        MessageAttributes: unparkedAttributes(message.MessageAttributes),
        // A FIFO queue gets the message's conversation back (an inbound conversation, an outbound recipient);
        // the DLQ message id makes a fresh deduplication id (the original one would be dropped within 5 min).
        ...(isFifoQueueUrl(this.queueUrl)
          ? {
              MessageGroupId: conversationOf(message) ?? groupOfBody(message.Body ?? '') ?? UNKNOWN_GROUP,
              MessageDeduplicationId: `redrive-${message.MessageId ?? ''}`,
            }
          : {}),
      }),
    );
  }

  /** A redriven pointer must resolve for as long as its new copies live: its object starts a new lifecycle window. */
  private async refreshClaimCheck(message: Message): Promise<void> {
    if (!this.claimChecks || stringAttribute(message.MessageAttributes, INGRESS_ATTRIBUTES.claimCheck) === undefined) return;
    const pointer = parseClaimCheckPointer(message.Body ?? '');
    // Not a pointer: the worker parks it again as claim_check_invalid; nothing to keep alive.
    if (pointer) await this.claimChecks.refresh(pointer);
  }
}

/** Oldest first (SentTimestamp on the DLQ: the parking time), so a conversation's parked events go back in order. */
function inParkingOrder(batch: Message[]): Message[] {
  const sentAt = (m: Message) => Number(m.Attributes?.SentTimestamp ?? 0);
  return [...batch].sort((a, b) => sentAt(a) - sentAt(b));
}
