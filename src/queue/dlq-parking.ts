import { randomUUID } from 'node:crypto';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { RetryableError, type PermanentReason } from '../errors';
import { conversationGroupId } from '../meta/conversation';
import { sharedCounter, type Counter, type Registry } from '../observability/metrics';
import { isFifoQueueUrl, UNKNOWN_GROUP } from './fifo';
import { INGRESS_ATTRIBUTES, REDRIVE_ATTRIBUTES, sendableAttributes, stringAttribute, type SqsAttributes } from './message';
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
export interface ParkingRecord {
  /** Names parking added: removed on redrive. */
  added: string[];
  /** Attributes parking overwrote, with their ingress values: restored on redrive. */
  replaced: SqsAttributes;
  parkedAt: string;
  /**
   * FIFO DLQ: the conversation (MessageGroupId) the message came from and goes back to. Its presence
   * also says the message sits alone in a DLQ group of its own (see `ownDlqGroup`).
   */
  groupId?: string;
  /** Set when a DLQ scan moved the message into a group of its own: its MessageId before, which still finds it. */
  formerId?: string;
  /**
   * Set with `formerId`: when the message first reached the DLQ. The copy keeps the original's
   * retention (a scan deletes it once that has passed), so a move never makes a message outlive
   * the dedupe records its redrive relies on.
   */
  dlqSince?: string;
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
  /** FIFO: the message's MessageGroupId (its conversation), kept in the parking record and restored on redrive. */
  groupId?: string;
}

/**
 * The original attributes plus the parking ones. Ingress messages carry at most 6 attributes, so
 * with `reason`, `eventKey`, `lineId` and `parkedAttributes` this stays within SQS's 10.
 * `conversationGroup` (FIFO DLQs only) goes into the parking record, not into an attribute of its own.
 */
export function parkingAttributes(input: Omit<ParkInput, 'body' | 'groupId'>, parkedAt: Date = new Date(), conversationGroup?: string): SqsAttributes {
  const original = sendableAttributes(input.attributes);
  const out: SqsAttributes = { ...original };
  const record: ParkingRecord = { added: [], replaced: {}, parkedAt: parkedAt.toISOString(), ...(conversationGroup !== undefined ? { groupId: conversationGroup } : {}) };
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

export function parkingRecord(attributes: SqsAttributes | undefined): ParkingRecord | undefined {
  const raw = stringAttribute(attributes, PARKING_ATTRIBUTES.record);
  if (raw === undefined) return undefined;
  try {
    const parsed = JSON.parse(raw) as Partial<ParkingRecord>;
    return {
      added: parsed.added ?? [],
      replaced: parsed.replaced ?? {},
      parkedAt: parsed.parkedAt ?? '',
      ...(typeof parsed.groupId === 'string' ? { groupId: parsed.groupId } : {}),
      ...(typeof parsed.formerId === 'string' ? { formerId: parsed.formerId } : {}),
      ...(typeof parsed.dlqSince === 'string' ? { dlqSince: parsed.dlqSince } : {}),
    };
  } catch {
    return undefined;
  }
}

/** The same attributes with the record's conversation group set: a message moved into a DLQ group of its own. */
export function withConversationGroup(attributes: SqsAttributes | undefined, moved: { conversationGroup: string; formerId: string; dlqSince: Date }): SqsAttributes {
  const out = sendableAttributes(attributes);
  const record: ParkingRecord = {
    ...(parkingRecord(attributes) ?? { added: [], replaced: {}, parkedAt: '' }),
    groupId: moved.conversationGroup,
    formerId: moved.formerId,
    dlqSince: moved.dlqSince.toISOString(),
  };
  out[PARKING_ATTRIBUTES.record] = { DataType: 'String', StringValue: JSON.stringify(record) };
  return out;
}

/**
 * Whether a FIFO DLQ message sits alone in its DLQ group. SQS hands out no message of a group
 * while one of it is in flight, so a scan that holds what it read sees only the first message of a
 * shared group. The parker therefore gives each parked message a group of its own and keeps the
 * conversation in the record; messages the redrive policy moved (no record) or that were parked
 * before this (no group in the record) may share their conversation's group.
 */
export function ownDlqGroup(attributes: SqsAttributes | undefined): boolean {
  return parkingRecord(attributes)?.groupId !== undefined;
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
    const fifo = isFifoQueueUrl(this.dlqUrl);
    const conversation = fifo ? (input.fifo?.groupId ?? input.groupId ?? groupOfBody(input.body) ?? UNKNOWN_GROUP) : undefined;
    // The deduplication id doubles as the message's own DLQ group: a repeated park of an outbound
    // job (same id) lands in the same group and is dropped, whatever the DLQ's deduplication scope.
    const deduplicationId = input.fifo?.deduplicationId ?? randomUUID();
    try {
      const out = await this.sqs.send(
        new SendMessageCommand({
          QueueUrl: this.dlqUrl,
          MessageBody: input.body,
          MessageAttributes: parkingAttributes(input, new Date(), conversation),
          ...(fifo ? { MessageGroupId: deduplicationId, MessageDeduplicationId: deduplicationId } : {}),
        }),
      );
      this.parked.inc({ reason: input.reason });
      return out.MessageId ?? '';
    } catch (error) {
      throw new RetryableError('dlq_unavailable', `Could not park ${input.eventKey ?? 'the message'} in the DLQ (${input.reason})`, { cause: error });
    }
  }
}

/**
 * The conversation of a message that reached a FIFO queue without a group (parked from, or
 * redriven into, FIFO after the switch from a standard queue): read off the body, when it is the
 * Meta payload and not a claim-check pointer.
 */
export function groupOfBody(body: string): string | undefined {
  try {
    const json: unknown = JSON.parse(body);
    return typeof json === 'object' && json !== null && 'entry' in json ? conversationGroupId(json) : undefined;
  } catch {
    return undefined;
  }
}
