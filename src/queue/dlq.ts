import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { RetryableError, type PermanentReason } from '../errors';
import { sharedCounter, type Counter, type Registry } from '../observability/metrics';
import { INGRESS_ATTRIBUTES, REDRIVE_ATTRIBUTES, parseClaimCheckPointer, sendableAttributes, stringAttribute, type ClaimCheckPointer, type SqsAttributes } from './message';
import { SQS_MAX_BATCH } from './sqs-batcher';
import { isFifoQueueUrl, resendFields, UNKNOWN_GROUP } from './fifo';
import { conversationGroupId } from '../meta/conversation';
import { sqsCallsCounter } from './sqs-calls';

/**
 * What the parker adds to a message it puts in the DLQ. `lineId` is also an ingress attribute
 * (per-line URLs) that the worker routes on, so `parkedAttributes` records exactly what parking
 * added or overwrote, and the redrive puts the ingress attributes back as they were. `eventKey`
 * (REDRIVE_ATTRIBUTES) is the exception: the redrive keeps it, so the worker delivers that event only.
 */
export const PARKING_ATTRIBUTES = {
  reason: 'reason',
  eventKey: REDRIVE_ATTRIBUTES.eventKey,
  lineId: INGRESS_ATTRIBUTES.lineId,
  record: 'parkedAttributes',
} as const;

/** Shown for messages SQS moved itself (redrive policy, maxReceiveCount): they carry no `reason`. */
export const REDRIVE_POLICY_REASON = 'redrive_max_receives';

/** The `parkedAttributes` attribute (JSON): what to remove and what to restore on redrive. */
interface ParkingRecord {
  /** Names parking added: removed on redrive. */
  added: string[];
  /** Attributes parking overwrote, with their ingress values: restored on redrive. */
  replaced: SqsAttributes;
  parkedAt: string;
}

export interface ParkInput {
  /** The SQS body as received (the Meta body, or the claim-check pointer): `ReceivedMessage.original.body`. */
  body: string;
  /** The SQS message attributes as received: `ReceivedMessage.original.attributes`. */
  attributes: SqsAttributes;
  /** Short stable reason (PermanentError.reason). */
  reason: PermanentReason;
  /** The event that failed, which a redrive will deliver alone; absent when the whole message is parked. */
  eventKey?: string;
  /** The line the event resolved to; absent for unrouted events. */
  lineId?: string;
  /** A FIFO DLQ (the outbound one) needs the group and a deduplication id. */
  fifo?: { groupId: string; deduplicationId: string };
  /** FIFO: the message's MessageGroupId (its conversation), kept in the FIFO DLQ and on redrive. */
  groupId?: string;
}

/**
 * The original attributes plus the parking ones. Ingress messages carry at most 6 attributes, so
 * with `reason`, `eventKey`, `lineId` and `parkedAttributes` this stays within SQS's 10.
 */
export function parkingAttributes(input: Omit<ParkInput, 'body' | 'groupId'>, parkedAt: Date = new Date()): SqsAttributes {
  const original = sendableAttributes(input.attributes);
  const out: SqsAttributes = { ...original };
  const record: ParkingRecord = { added: [], replaced: {}, parkedAt: parkedAt.toISOString() };
  const set = (name: string, value: string | undefined) => {
    if (value === undefined || value === '') return;
    const before = original[name];
    if (before?.DataType === 'String' && before.StringValue === value) return; // unchanged: the ingress value stays
    if (before) record.replaced[name] = before;
    else record.added.push(name);
    out[name] = { DataType: 'String', StringValue: value };
  };
  set(PARKING_ATTRIBUTES.reason, input.reason);
  set(PARKING_ATTRIBUTES.lineId, input.lineId);
  // Not in the record: the redrive keeps it (a re-parked redrive overwrites it with the same or a narrower key).
  if (input.eventKey) out[PARKING_ATTRIBUTES.eventKey] = { DataType: 'String', StringValue: input.eventKey };
  out[PARKING_ATTRIBUTES.record] = { DataType: 'String', StringValue: JSON.stringify(record) };
  return out;
}

function parkingRecord(attributes: SqsAttributes | undefined): ParkingRecord | undefined {
  const raw = stringAttribute(attributes, PARKING_ATTRIBUTES.record);
  if (raw === undefined) return undefined;
  try {
    const parsed = JSON.parse(raw) as Partial<ParkingRecord>;
    return { added: parsed.added ?? [], replaced: parsed.replaced ?? {}, parkedAt: parsed.parkedAt ?? '' };
  } catch {
    return undefined;
  }
}

/** The attributes the message had before parking: what goes back to the main queue. */
export function unparkedAttributes(attributes: SqsAttributes | undefined): SqsAttributes {
  const out = sendableAttributes(attributes);
  const record = parkingRecord(attributes);
  if (!record) return out; // moved by the redrive policy: untouched ingress attributes
  delete out[PARKING_ATTRIBUTES.record];
  for (const name of record.added) delete out[name];
  Object.assign(out, sendableAttributes(record.replaced));
  return out;
}

export interface DlqParkerOptions {
  sqs: SQSClient;
  dlqUrl: string;
  registry: Registry;
}

/** Puts a permanently failed event in the DLQ with its message and the reason. */
export class DlqParker {
  private readonly sqs: SQSClient;
  private readonly dlqUrl: string;
  private readonly calls: Counter<'operation'>;
  private readonly parked: Counter<'reason'>;

  constructor(options: DlqParkerOptions) {
    this.sqs = options.sqs;
    this.dlqUrl = options.dlqUrl;
    this.calls = sqsCallsCounter(options.registry);
    // Shared by the parkers of one process (the inbound worker's and the outbound sender's).
    this.parked = sharedCounter(options.registry, {
      name: 'wa_ingress_worker_parked_total',
      help: 'Events, outbound jobs (or whole messages) parked in a DLQ, by reason',
      labelNames: ['reason'],
    });
  }

  /** Returns the DLQ MessageId. Throws RetryableError when SQS says no: the message is then retried, not lost. */
  async park(input: ParkInput): Promise<string> {
    this.calls.inc({ operation: 'SendMessage' });
    try {
      const out = await this.sqs.send(
        new SendMessageCommand({
          QueueUrl: this.dlqUrl,
          MessageBody: input.body,
          MessageAttributes: parkingAttributes(input),
          // An outbound job names its group and dedup id; an inbound message keeps its conversation, with a fresh dedup id.
          ...(input.fifo
            ? { MessageGroupId: input.fifo.groupId, MessageDeduplicationId: input.fifo.deduplicationId }
            : resendFields(this.dlqUrl, input.groupId ?? groupOfBody(input.body))),
        }),
      );
      this.parked.inc({ reason: input.reason });
      return out.MessageId ?? '';
    } catch (error) {
      throw new RetryableError('dlq_unavailable', `Could not park ${input.eventKey ?? 'the message'} in the DLQ (${input.reason})`, { cause: error });
    }
  }
}

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
    groupId: message.Attributes?.MessageGroupId,
    receiveCount: Number(message.Attributes?.ApproximateReceiveCount ?? 0),
    bodyBytes: Buffer.byteLength(body, 'utf8'),
    body,
    attributes,
  };
}

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
  private readonly dlqUrl: string;
  private readonly holdSeconds: number;
  private readonly waitTimeSeconds: number;
  private readonly maxMessages: number;
  private readonly claimChecks?: DeadLetterQueueOptions['claimChecks'];
  private readonly refuse?: DeadLetterQueueOptions['refuse'];

  constructor(options: DeadLetterQueueOptions) {
    this.sqs = options.sqs;
    this.queueUrl = options.queueUrl;
    this.dlqUrl = options.dlqUrl;
    this.holdSeconds = options.holdSeconds ?? 30;
    this.waitTimeSeconds = options.waitTimeSeconds ?? 1;
    this.maxMessages = options.maxMessages ?? 1000;
    this.claimChecks = options.claimChecks;
    this.refuse = options.refuse;
  }

  async list(): Promise<DlqEntry[]> {
    const entries: DlqEntry[] = [];
    await this.scan(async (batch) => {
      entries.push(...batch.map(describeDlqMessage));
      return { consumed: [], stop: false };
    });
    return entries;
  }

  async show(id: string): Promise<DlqEntry | undefined> {
    let found: DlqEntry | undefined;
    await this.scan(async (batch) => {
      const message = batch.find((m) => m.MessageId === id);
      if (message) found = describeDlqMessage(message);
      return { consumed: [], stop: found !== undefined };
    });
    return found;
  }

  /** Back to the main queue with the original body and ingress attributes, then off the DLQ. */
  async redrive(selector: RedriveSelector): Promise<RedriveResult> {
    const result: RedriveResult = { redriven: [], notDeleted: [], failed: [] };
    await this.scan(async (batch) => {
      const chosen = 'id' in selector ? batch.filter((m) => m.MessageId === selector.id) : batch;
      const sent: Message[] = [];
      // One SendMessage each: bodies reach ~1 MiB, so a 10-entry batch would break SQS's 1 MiB batch cap.
      for (const message of chosen) {
        try {
          const refusal = await this.refuse?.(message);
          if (refusal) {
            result.failed.push({ id: message.MessageId ?? '', error: refusal });
            continue;
          }
          await this.refreshClaimCheck(message);
          await this.sqs.send(
            new SendMessageCommand({
              QueueUrl: this.queueUrl,
              MessageBody: message.Body ?? '',
              MessageAttributes: unparkedAttributes(message.MessageAttributes),
              // A FIFO queue keeps the message's group (an inbound conversation, an outbound recipient); the DLQ
              // message id makes a fresh deduplication id (the original one would be dropped within 5 min).
              ...(isFifoQueueUrl(this.queueUrl)
                ? {
                    MessageGroupId: message.Attributes?.MessageGroupId ?? groupOfBody(message.Body ?? '') ?? UNKNOWN_GROUP,
                    MessageDeduplicationId: `redrive-${message.MessageId ?? ''}`,
                  }
                : {}),
            }),
          );
          sent.push(message);
        } catch (error) {
          result.failed.push({ id: message.MessageId ?? '', error: (error as Error).message });
        }
      }
      const deleted = await this.deleteFromDlq(sent);
      for (const message of sent) {
        const id = message.MessageId ?? '';
        result.redriven.push(id);
        if (!deleted.has(id)) result.notDeleted.push(id);
      }
      return { consumed: [...deleted], stop: 'id' in selector && chosen.length > 0 };
    });
    return result;
  }

  /** A redriven pointer must resolve for as long as its new copies live: its object starts a new lifecycle window. */
  private async refreshClaimCheck(message: Message): Promise<void> {
    if (!this.claimChecks || stringAttribute(message.MessageAttributes, INGRESS_ATTRIBUTES.claimCheck) === undefined) return;
    const pointer = parseClaimCheckPointer(message.Body ?? '');
    // Not a pointer: the worker parks it again as claim_check_invalid; nothing to keep alive.
    if (pointer) await this.claimChecks.refresh(pointer);
  }

  /**
   * Delete every message in the DLQ; returns how many. Receive + delete rather than PurgeQueue:
   * PurgeQueue runs asynchronously for up to 60 s, is allowed once a minute and counts nothing.
   */
  async purge(): Promise<number> {
    let purged = 0;
    await this.scan(async (batch) => {
      const deleted = await this.deleteFromDlq(batch);
      purged += deleted.size;
      return { consumed: [...deleted], stop: false };
    });
    return purged;
  }

  private async deleteFromDlq(messages: Message[]): Promise<Set<string>> {
    const deleted = new Set<string>();
    for (let i = 0; i < messages.length; i += SQS_MAX_BATCH) {
      const chunk = messages.slice(i, i + SQS_MAX_BATCH);
      const out = await this.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.dlqUrl,
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

  /**
   * Receive the DLQ batch by batch until a receive comes back empty (or only with messages already
   * seen), hand each new batch to `visit`, then make every message `visit` did not consume visible
   * again at once.
   */
  private async scan(visit: (batch: Message[]) => Promise<{ consumed: string[]; stop: boolean }>): Promise<void> {
    const held = new Map<string, string>();
    const seen = new Set<string>();
    try {
      while (seen.size < this.maxMessages) {
        const out = await this.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: this.dlqUrl,
            MaxNumberOfMessages: SQS_MAX_BATCH,
            WaitTimeSeconds: this.waitTimeSeconds,
            VisibilityTimeout: this.holdSeconds,
            MessageSystemAttributeNames: ['All'],
            AttributeNames: ['All'], // local-aws-sqs reads only the deprecated name
            MessageAttributeNames: ['All'],
          }),
        );
        const messages = out.Messages ?? [];
        if (messages.length === 0) break;
        const fresh: Message[] = [];
        for (const message of messages) {
          if (!message.MessageId || !message.ReceiptHandle) continue;
          held.set(message.MessageId, message.ReceiptHandle);
          if (!seen.has(message.MessageId)) fresh.push(message);
          seen.add(message.MessageId);
        }
        // Only messages seen before: the scan outlived the hold and went round again.
        if (fresh.length === 0) break;
        const { consumed, stop } = await visit(fresh);
        for (const id of consumed) held.delete(id);
        if (stop) break;
      }
    } finally {
      await this.release([...held.values()]);
    }
  }

  private async release(receiptHandles: string[]): Promise<void> {
    for (let i = 0; i < receiptHandles.length; i += SQS_MAX_BATCH) {
      const chunk = receiptHandles.slice(i, i + SQS_MAX_BATCH);
      // Best effort: what is not released turns visible by itself after holdSeconds.
      await this.sqs
        .send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: this.dlqUrl,
            Entries: chunk.map((ReceiptHandle, j) => ({ Id: String(j), ReceiptHandle, VisibilityTimeout: 0 })),
          }),
        )
        .catch(() => undefined);
    }
  }
}

/**
 * The conversation of a message that reached a FIFO queue without a group (parked from, or
 * redriven into, FIFO after the switch from a standard queue): read off the body, when it is the
 * Meta payload and not a claim-check pointer.
 */
function groupOfBody(body: string): string | undefined {
  try {
    const json: unknown = JSON.parse(body);
    return typeof json === 'object' && json !== null && 'entry' in json ? conversationGroupId(json) : undefined;
  } catch {
    return undefined;
  }
}
