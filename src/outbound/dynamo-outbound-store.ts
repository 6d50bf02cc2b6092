import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ItemUpdates } from '../aws/item-updates';
import { ConfigError, RetryableError } from '../errors';
import { OUTBOUND_BY_WAMID_INDEX } from '../aws/resources';
import type { JournalBus } from '../journal/journal-bus';
import { Counter, sharedCounter, type Registry } from '../observability/metrics';
import { ConditionalRecordUpdate, describeError, isConditionFailure, journeyStep, storeFailure, type RecordUpdateInput } from './dynamo-record-update';
import { DynamoSendOutcomes } from './dynamo-send-outcomes';
import type { ClaimResult, CreateResult, NewOutbound, OperatorDecision, OutboundStore, SendFence, SettledRecord, StatusUpdate } from './outbound-store';
import { STATE_RANK, contactKey, outboxShardOf, type JourneyStep, type OutboundError, type OutboundRecord, type SuppressedReason } from './record';
import { wamidDigest } from '../privacy/pseudonyms';

export interface DynamoOutboundStoreOptions {
  documents: DynamoDBDocumentClient;
  /** createAwsClients' itemUpdates: record state changes skip the DocumentClient (src/aws/item-updates.ts). */
  itemUpdates?: DynamoDBClient;
  /** DYNAMODB_OUTBOUND_TABLE: key `pk`; indexes byWamid, byLine, byContact, byPending; TTL on `expiresAt`. */
  tableName: string;
  retentionDays: number;
  registry?: Registry;
  clock?: () => number;
  /** Each journey step written is published here (the console's live tail in this process). */
  journalBus?: JournalBus;
}

export const OUTBOUND_WRITES_METRIC = 'wa_ingress_outbound_store_writes_total';

/**
 * Outbound records in DynamoDB. Each state change is one conditional write that also appends the
 * journey step (list_append), so the journal costs no extra writes. Reads happen only when a
 * conditional write was refused and the caller must know why. Here: create, reads, the claim and
 * Meta's statuses; the writes that end a send (fenced by the claim) are DynamoSendOutcomes.
 */
export class DynamoOutboundStore implements OutboundStore {
  /** Create and the reads: the cached client when given (src/aws/item-updates.ts). */
  private readonly items: ItemUpdates;
  private readonly tableName: string;
  private readonly retentionSeconds: number;
  private readonly clock: () => number;
  private readonly writes: Counter<'operation' | 'result'>;
  private readonly journalBus?: JournalBus;
  private readonly update: ConditionalRecordUpdate;
  private readonly outcomes: DynamoSendOutcomes;

  constructor(options: DynamoOutboundStoreOptions) {
    if (!options.tableName) throw new ConfigError('DYNAMODB_OUTBOUND_TABLE must name the outbound table');
    this.items = new ItemUpdates(options.documents, options.itemUpdates);
    this.tableName = options.tableName;
    this.retentionSeconds = Math.round(options.retentionDays * 86_400);
    this.clock = options.clock ?? Date.now;
    this.journalBus = options.journalBus;
    const counter = { name: OUTBOUND_WRITES_METRIC, help: 'DynamoDB writes to outbound records, by operation and result (applied, refused: the condition did not hold)', labelNames: ['operation', 'result'] as const };
    this.writes = options.registry ? sharedCounter(options.registry, counter) : new Counter({ ...counter, registers: [] });
    this.update = new ConditionalRecordUpdate({ documents: options.documents, itemUpdates: options.itemUpdates, tableName: this.tableName, writes: this.writes, journalBus: this.journalBus });
    this.outcomes = new DynamoSendOutcomes(this.update, this.clock);
  }

  async create(input: NewOutbound): Promise<CreateResult> {
    const now = this.clock();
    const at = new Date(now).toISOString();
    const { body, ...fields } = input;
    const record: OutboundRecord = {
      pk: input.id,
      ...fields,
      sendBody: JSON.stringify(body),
      outboxShard: outboxShardOf(input.id),
      outboxAt: at,
      contactKey: contactKey(input.lineId, input.to),
      status: 'queued',
      rank: STATE_RANK.queued,
      createdAt: at,
      updatedAt: at,
      attempts: 0,
      journey: [{ at, step: 'queued', detail: `${input.source} ${input.type}` }],
      expiresAt: Math.floor(now / 1000) + this.retentionSeconds,
    };
    try {
      await this.items.put({ TableName: this.tableName, Item: record, ConditionExpression: 'attribute_not_exists(pk)' });
      this.writes.inc({ operation: 'create', result: 'applied' });
      this.journalBus?.publish({ handle: record.id, lineId: record.lineId, step: 'queued', at });
      return { created: true, record };
    } catch (error) {
      if (!isConditionFailure(error)) throw storeFailure('create', error);
      this.writes.inc({ operation: 'create', result: 'refused' });
    }
    const existing = await this.get(input.id);
    if (!existing) throw new RetryableError('outbound_store_race', `Outbound record ${input.id} was refused as existing but cannot be read`);
    return { created: false, record: existing };
  }

  async get(id: string): Promise<OutboundRecord | undefined> {
    try {
      const out = await this.items.get({ TableName: this.tableName, Key: { pk: id }, ConsistentRead: true });
      return out.Item as OutboundRecord | undefined;
    } catch (error) {
      throw storeFailure('get', error);
    }
  }

  async findByWamid(wamid: string): Promise<OutboundRecord | undefined> {
    try {
      const out = await this.items.query({
        TableName: this.tableName,
        IndexName: OUTBOUND_BY_WAMID_INDEX,
        KeyConditionExpression: '#wamid = :wamid',
        ExpressionAttributeNames: { '#wamid': 'wamid' },
        ExpressionAttributeValues: { ':wamid': wamidDigest(wamid) },
        Limit: 1,
      });
      const found = out.Items?.[0] as OutboundRecord | undefined;
      // Index reads are eventually consistent and may project less: read the item itself.
      return found ? this.get(found.pk) : undefined;
    } catch (error) {
      throw storeFailure('findByWamid', error);
    }
  }

  async claim(id: string, leaseMs: number): Promise<ClaimResult> {
    const now = this.clock();
    const answer = await this.change('claim', id, {
      UpdateExpression: 'SET #status = :sending, #rank = :sendingRank, #retryAt = :retryAt, #updatedAt = :at, #journey = list_append(#journey, :step) ADD #attempts :one REMOVE #outboxShard',
      ConditionExpression: 'attribute_exists(#pk) AND (#status = :queued OR ((#status = :sending OR #status = :uncertain) AND #retryAt < :now))',
      ExpressionAttributeValues: {
        ':sending': 'sending',
        ':uncertain': 'uncertain',
        ':queued': 'queued',
        ':sendingRank': STATE_RANK.sending,
        ':retryAt': now + leaseMs,
        ':now': now,
        ':at': new Date(now).toISOString(),
        ':one': 1,
        ':step': [this.step(now, 'sending')],
      },
      ReturnValues: 'ALL_OLD',
    });
    if (!answer) return { claimed: false, record: await this.get(id) };
    const before = answer as unknown as OutboundRecord;
    const resend = before.status === 'uncertain' ? 'uncertain' : before.status === 'sending' ? 'lapsed_claim' : false;
    const record: OutboundRecord = {
      ...before,
      status: 'sending',
      rank: STATE_RANK.sending,
      retryAt: now + leaseMs,
      attempts: (before.attempts ?? 0) + 1,
      journey: [...(before.journey ?? []), this.step(now, 'sending')],
    };
    delete record.outboxShard;
    return { claimed: true, record, resend };
  }

  markSent(fence: SendFence, wamid: string): Promise<boolean> {
    return this.outcomes.markSent(fence, wamid);
  }

  markUncertain(fence: SendFence, graceMs: number | undefined, detail: string): Promise<boolean> {
    return this.outcomes.markUncertain(fence, graceMs, detail);
  }

  release(fence: SendFence, detail: string): Promise<boolean> {
    return this.outcomes.release(fence, detail);
  }

  markFailed(fence: SendFence, error: OutboundError): Promise<boolean> {
    return this.outcomes.markFailed(fence, error);
  }

  markSuppressed(fence: SendFence, reason: SuppressedReason): Promise<boolean> {
    return this.outcomes.markSuppressed(fence, reason);
  }

  decide(id: string, decision: OperatorDecision): Promise<boolean> {
    return this.outcomes.decide(id, decision);
  }

  async settle(update: StatusUpdate): Promise<SettledRecord | undefined> {
    const id = update.id ?? (await this.findByWamid(update.wamid))?.pk;
    if (!id) return undefined;
    const now = this.clock();
    const rank = STATE_RANK[update.status];
    const detail = update.status === 'failed' && update.error ? describeError(update.error) : wamidDigest(update.wamid);
    const values: Record<string, unknown> = {
      ':status': update.status,
      ':rank': rank,
      ':wamid': wamidDigest(update.wamid),
      ':lineId': update.lineId,
      ':at': new Date(now).toISOString(),
      ':step': [this.step(now, update.status, detail)],
    };
    let set = 'SET #status = :status, #rank = :rank, #wamid = if_not_exists(#wamid, :wamid), #updatedAt = :at, #journey = list_append(#journey, :step)';
    if (update.status === 'failed') {
      set += ', #error = :error';
      values[':error'] = update.error ?? { title: 'failed' };
    }
    if (update.pricing) {
      // The first status with a pricing names itself in pricedBy: the one that counts the reply as billed.
      set += ', #pricing = :pricing, #pricedBy = if_not_exists(#pricedBy, :status)';
      values[':pricing'] = update.pricing;
    }
    const answer = await this.change('settle', id, {
      UpdateExpression: `${set} REMOVE #retryAt`,
      // The line must match: a status of another line's number never touches this record.
      ConditionExpression: 'attribute_exists(#pk) AND #lineId = :lineId AND #rank < :rank',
      ExpressionAttributeValues: values,
      ReturnValues: 'ALL_NEW',
    });
    if (answer) return priced(answer as unknown as OutboundRecord, update);
    // Refused: already as far or further (a late `sent` after `read`), or not this line's, or not ours.
    const record = await this.get(id);
    if (!record || record.lineId !== update.lineId) return undefined;
    // A late status still brings the reply's pricing when none came before (a `read` that overtook `delivered`).
    if (update.pricing && !record.pricing) return (await this.storePricing(id, update)) ?? record;
    return record;
  }

  private async storePricing(id: string, update: StatusUpdate): Promise<SettledRecord | undefined> {
    const answer = await this.change('price', id, {
      UpdateExpression: 'SET #pricing = :pricing, #pricedBy = :status',
      ConditionExpression: 'attribute_exists(#pk) AND #lineId = :lineId AND attribute_not_exists(#pricing)',
      ExpressionAttributeValues: { ':pricing': update.pricing, ':status': update.status, ':lineId': update.lineId },
      ReturnValues: 'ALL_NEW',
    });
    return answer ? { ...(answer as unknown as OutboundRecord), pricedNow: true } : undefined;
  }

  private step(now: number, step: JourneyStep['step'], detail?: string): JourneyStep {
    return journeyStep(now, step, detail);
  }

  private change(operation: string, id: string, input: RecordUpdateInput): Promise<Record<string, unknown> | undefined> {
    return this.update.apply(operation, id, input);
  }
}

/** The settle write applied: it stored the reply's first pricing when it named itself in pricedBy. */
function priced(record: OutboundRecord, update: StatusUpdate): SettledRecord {
  return update.pricing && record.pricedBy === update.status ? { ...record, stepped: true, pricedNow: true } : { ...record, stepped: true };
}
