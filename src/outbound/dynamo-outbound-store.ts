import { GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient, type UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import { ConfigError, PermanentError, RetryableError, type GatewayError } from '../errors';
import { OUTBOUND_BY_WAMID_INDEX } from '../aws/resources';
import type { JournalBus } from '../journal/journal-bus';
import { Counter, sharedCounter, type Registry } from '../observability/metrics';
import type { ClaimResult, CreateResult, NewOutbound, OutboundStore, StatusUpdate } from './outbound-store';
import { STATE_RANK, contactKey, outboxShardOf, type JourneyStep, type OutboundError, type OutboundRecord } from './record';
import { wamidDigest } from '../privacy/pseudonyms';

export interface DynamoOutboundStoreOptions {
  documents: DynamoDBDocumentClient;
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
 * conditional write was refused and the caller must know why.
 */
export class DynamoOutboundStore implements OutboundStore {
  private readonly documents: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly retentionSeconds: number;
  private readonly clock: () => number;
  private readonly writes: Counter<'operation' | 'result'>;
  private readonly journalBus?: JournalBus;

  constructor(options: DynamoOutboundStoreOptions) {
    if (!options.tableName) throw new ConfigError('DYNAMODB_OUTBOUND_TABLE must name the outbound table');
    this.documents = options.documents;
    this.tableName = options.tableName;
    this.retentionSeconds = Math.round(options.retentionDays * 86_400);
    this.clock = options.clock ?? Date.now;
    this.journalBus = options.journalBus;
    const counter = { name: OUTBOUND_WRITES_METRIC, help: 'DynamoDB writes to outbound records, by operation and result (applied, refused: the condition did not hold)', labelNames: ['operation', 'result'] as const };
    this.writes = options.registry ? sharedCounter(options.registry, counter) : new Counter({ ...counter, registers: [] });
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
      await this.documents.send(
        new PutCommand({ TableName: this.tableName, Item: record, ConditionExpression: 'attribute_not_exists(pk)' }),
      );
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
      const out = await this.documents.send(new GetCommand({ TableName: this.tableName, Key: { pk: id }, ConsistentRead: true }));
      return out.Item as OutboundRecord | undefined;
    } catch (error) {
      throw storeFailure('get', error);
    }
  }

  async findByWamid(wamid: string): Promise<OutboundRecord | undefined> {
    try {
      const out = await this.documents.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: OUTBOUND_BY_WAMID_INDEX,
          KeyConditionExpression: '#wamid = :wamid',
          ExpressionAttributeNames: { '#wamid': 'wamid' },
          ExpressionAttributeValues: { ':wamid': wamidDigest(wamid) },
          Limit: 1,
        }),
      );
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

  async markSent(id: string, wamid: string): Promise<boolean> {
    const now = this.clock();
    return (
      (await this.change('sent', id, {
        UpdateExpression: 'SET #status = :sent, #rank = :rank, #wamid = :wamid, #updatedAt = :at, #journey = list_append(#journey, :step) REMOVE #retryAt',
        ConditionExpression: 'attribute_exists(#pk) AND #rank < :rank',
        ExpressionAttributeValues: {
          ':sent': 'sent',
          ':rank': STATE_RANK.sent,
          ':wamid': wamidDigest(wamid),
          ':at': new Date(now).toISOString(),
          ':step': [this.step(now, 'sent', wamidDigest(wamid))],
        },
      })) !== undefined
    );
  }

  async markUncertain(id: string, graceMs: number, detail: string): Promise<boolean> {
    const now = this.clock();
    return (
      (await this.change('uncertain', id, {
        UpdateExpression: 'SET #status = :uncertain, #retryAt = :retryAt, #updatedAt = :at, #journey = list_append(#journey, :step)',
        ConditionExpression: '#status = :sending',
        ExpressionAttributeValues: {
          ':uncertain': 'uncertain',
          ':sending': 'sending',
          ':retryAt': now + graceMs,
          ':at': new Date(now).toISOString(),
          ':step': [this.step(now, 'uncertain', detail)],
        },
      })) !== undefined
    );
  }

  async release(id: string, detail: string): Promise<boolean> {
    const now = this.clock();
    return (
      (await this.change('release', id, {
        UpdateExpression: 'SET #status = :queued, #rank = :rank, #updatedAt = :at, #journey = list_append(#journey, :step) REMOVE #retryAt',
        ConditionExpression: '#status = :sending',
        ExpressionAttributeValues: {
          ':queued': 'queued',
          ':sending': 'sending',
          ':rank': STATE_RANK.queued,
          ':at': new Date(now).toISOString(),
          ':step': [this.step(now, 'retry', detail)],
        },
      })) !== undefined
    );
  }

  async markFailed(id: string, error: OutboundError): Promise<boolean> {
    const now = this.clock();
    return (
      (await this.change('failed', id, {
        UpdateExpression: 'SET #status = :failed, #rank = :rank, #error = :error, #updatedAt = :at, #journey = list_append(#journey, :step) REMOVE #retryAt',
        ConditionExpression: 'attribute_exists(#pk) AND #rank < :rank',
        ExpressionAttributeValues: {
          ':failed': 'failed',
          ':rank': STATE_RANK.failed,
          ':error': error,
          ':at': new Date(now).toISOString(),
          ':step': [this.step(now, 'failed', describeError(error))],
        },
      })) !== undefined
    );
  }

  async settle(update: StatusUpdate): Promise<OutboundRecord | undefined> {
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
    const answer = await this.change('settle', id, {
      UpdateExpression: `${set} REMOVE #retryAt`,
      // The line must match: a status of another line's number never touches this record.
      ConditionExpression: 'attribute_exists(#pk) AND #lineId = :lineId AND #rank < :rank',
      ExpressionAttributeValues: values,
      ReturnValues: 'ALL_NEW',
    });
    if (answer) return answer as unknown as OutboundRecord;
    // Refused: already as far or further (a late `sent` after `read`), or not this line's, or not ours.
    const record = await this.get(id);
    return record && record.lineId === update.lineId ? record : undefined;
  }

  private step(now: number, step: JourneyStep['step'], detail?: string): JourneyStep {
    return detail === undefined ? { at: new Date(now).toISOString(), step } : { at: new Date(now).toISOString(), step, detail };
  }

  /** One conditional UpdateItem; undefined when the condition did not hold. `#name` stands for the attribute `name`. */
  private async change(
    operation: string,
    id: string,
    input: Omit<UpdateCommandInput, 'TableName' | 'Key' | 'ExpressionAttributeNames'>,
  ): Promise<Record<string, unknown> | undefined> {
    const expressions = `${input.UpdateExpression ?? ''} ${input.ConditionExpression ?? ''}`;
    const names = Object.fromEntries([...expressions.matchAll(/#\w+/g)].map(([p]) => [p, p.slice(1)]));
    try {
      const out = await this.documents.send(
        // ALL_NEW unless told: the record's line, for the live tail, comes with the write.
        new UpdateCommand({ TableName: this.tableName, Key: { pk: id }, ExpressionAttributeNames: names, ReturnValues: 'ALL_NEW', ...input }),
      );
      this.writes.inc({ operation, result: 'applied' });
      const lineId = out.Attributes?.lineId;
      const steps = (input.ExpressionAttributeValues?.[':step'] ?? []) as JourneyStep[];
      if (typeof lineId === 'string') for (const step of steps) this.journalBus?.publish({ handle: id, lineId, step: step.step === 'uncertain' ? 'sending' : step.step, at: step.at });
      return out.Attributes ?? {};
    } catch (error) {
      if (isConditionFailure(error)) {
        this.writes.inc({ operation, result: 'refused' });
        return undefined;
      }
      throw storeFailure(operation, error);
    }
  }
}

function describeError(error: OutboundError): string {
  return error.code === undefined ? error.title : `${error.code} ${error.title}`;
}

function isConditionFailure(error: unknown): boolean {
  return error instanceof Error && error.name === 'ConditionalCheckFailedException';
}

function storeFailure(operation: string, error: unknown): GatewayError {
  const name = error instanceof Error ? error.name : 'UnknownError';
  if (name === 'ValidationException') {
    return new PermanentError('outbound_store_rejected', `DynamoDB rejected the outbound ${operation} as invalid (${name})`, { cause: error });
  }
  return new RetryableError(
    'outbound_store_unavailable',
    `outbound record ${operation} failed (${name}); check DynamoDB and that DYNAMODB_OUTBOUND_TABLE exists`,
    { cause: error },
  );
}
