import { randomUUID } from 'node:crypto';
import { GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ConfigError, RetryableError } from '../../errors';
import { ERASURES_PENDING_INDEX } from '../../aws/resources';
import { newErasureId, type ErasureRecord, type ErasureTarget } from './erasure';

/** The value of `pending` while an erasure is not done: the sparse index holds only those items. */
const PENDING = 'pending';

/** The erased marker of a contact: one per phone number id (what an inbound payload names) and contact digest. */
export function erasedMarkerKey(phoneNumberId: string, contactDigest: string): string {
  return `erased#${phoneNumberId}#${contactDigest}`;
}

/**
 * Erasures and their markers, in their own small table (DYNAMODB_ERASURES_TABLE): the records are the
 * audit trail and are kept (no TTL), which the dedupe table's expiring items could not be; and the
 * runner finds pending ones through a sparse index (`byPending`), never a Scan. Two kinds of items:
 *
 * - `er_…`: one erasure, its progress checkpointed by the runner that holds its lease;
 * - `erased#<phone number id>#<contact digest>`: the contact's marker: the latest erasure's time
 *   (what the DLQ redrive checks), and the pending erasure's id (what makes a repeated request
 *   answer the same id).
 */
export class DynamoErasureStore {
  private readonly documents: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly now: () => Date;

  constructor(options: { documents: DynamoDBDocumentClient; tableName: string; now?: () => Date }) {
    if (!options.tableName) throw new ConfigError('DYNAMODB_ERASURES_TABLE must name the erasures table');
    this.documents = options.documents;
    this.tableName = options.tableName;
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Durable once this resolves. The marker is claimed first (its `pendingId` names at most one
   * erasure at a time), then the record is written; a crash between the two leaves a marker whose
   * record is missing, which the next request for the contact writes.
   */
  async accept(target: ErasureTarget, requestedBy: ErasureRecord['requestedBy']): Promise<{ record: ErasureRecord; created: boolean }> {
    const at = this.now().toISOString();
    const candidate = newErasureId();
    const marker = await this.call(() =>
      this.documents.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: erasedMarkerKey(target.phoneNumberId, target.contactDigest) },
          UpdateExpression: 'SET pendingId = if_not_exists(pendingId, :id), erasedAt = :at, lineId = :lineId',
          ExpressionAttributeValues: { ':id': candidate, ':at': at, ':lineId': target.lineId },
          ReturnValues: 'ALL_NEW',
        }),
      ),
    );
    const id = String(marker.Attributes?.pendingId);
    const record: ErasureRecord = {
      ...target,
      id,
      status: 'queued',
      requestedAt: at,
      requestedBy,
      updatedAt: at,
      counts: {},
      stepsDone: [],
    };
    try {
      await this.documents.send(
        new PutCommand({ TableName: this.tableName, Item: { pk: id, pending: PENDING, ...record }, ConditionExpression: 'attribute_not_exists(pk)' }),
      );
      return { record, created: id === candidate };
    } catch (error) {
      if (!isConditionFailure(error)) throw unavailable(error);
    }
    const existing = await this.get(id);
    if (!existing) throw new RetryableError('erasure_unavailable', 'The pending erasure vanished while it was read');
    return { record: existing, created: false };
  }

  async get(id: string): Promise<ErasureRecord | undefined> {
    const out = await this.call(() => this.documents.send(new GetCommand({ TableName: this.tableName, Key: { pk: id }, ConsistentRead: true })));
    return out.Item && typeof out.Item.status === 'string' ? toRecord(out.Item) : undefined;
  }

  /** Erasures not done yet, oldest first, from the sparse index. */
  async pending(limit = 25): Promise<ErasureRecord[]> {
    const out = await this.call(() =>
      this.documents.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: ERASURES_PENDING_INDEX,
          KeyConditionExpression: 'pending = :pending',
          ExpressionAttributeValues: { ':pending': PENDING },
          Limit: limit,
        }),
      ),
    );
    return (out.Items ?? []).map(toRecord);
  }

  /** Takes (or renews) the erasure's lease: undefined when another runner holds it, or it is done. */
  async lease(id: string, owner: string, leaseMs: number): Promise<ErasureRecord | undefined> {
    const now = this.now();
    try {
      const out = await this.documents.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: id },
          UpdateExpression: 'SET leaseOwner = :owner, leaseUntil = :until, #status = :running, updatedAt = :at',
          ConditionExpression: 'attribute_exists(pending) AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now OR leaseOwner = :owner)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':owner': owner, ':until': now.getTime() + leaseMs, ':running': 'running', ':at': now.toISOString(), ':now': now.getTime() },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toRecord(out.Attributes!);
    } catch (error) {
      if (isConditionFailure(error)) return undefined;
      throw unavailable(error);
    }
  }

  /** Before a step removes anything: what it is about to remove, so a crash mid-batch redoes exactly it. */
  async beginBatch(id: string, owner: string, batch: { step: string; ids: string[] }): Promise<void> {
    await this.owned(id, owner, 'SET #batch = :batch, updatedAt = :at', { ':batch': batch }, { '#batch': 'batch' });
  }

  /** After the batch is removed: its count added, the batch cleared, in one write. */
  async endBatch(id: string, owner: string, step: string, removed: number): Promise<void> {
    await this.owned(id, owner, 'SET counts.#step = if_not_exists(counts.#step, :zero) + :n, updatedAt = :at REMOVE #batch', { ':n': removed, ':zero': 0 }, { '#step': step, '#batch': 'batch' });
  }

  async stepDone(id: string, owner: string, step: string): Promise<void> {
    await this.owned(id, owner, 'SET stepsDone = list_append(stepsDone, :step), counts.#step = if_not_exists(counts.#step, :zero), updatedAt = :at', { ':step': [step], ':zero': 0 }, { '#step': step });
  }

  /** Done: out of the pending index, the lease dropped, and the marker free for a later erasure. Kept as the audit trail. */
  async finish(record: ErasureRecord, owner: string): Promise<ErasureRecord> {
    const at = this.now().toISOString();
    await this.owned(record.id, owner, 'SET #status = :done, completedAt = :at, updatedAt = :at REMOVE pending, leaseOwner, leaseUntil, #batch', { ':done': 'done' }, { '#status': 'status', '#batch': 'batch' });
    try {
      await this.documents.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: erasedMarkerKey(record.phoneNumberId, record.contactDigest) },
          UpdateExpression: 'REMOVE pendingId SET lastErasureId = :id',
          ConditionExpression: 'pendingId = :id',
          ExpressionAttributeValues: { ':id': record.id },
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw unavailable(error);
    }
    return { ...record, status: 'done', completedAt: at, updatedAt: at };
  }

  /** When the contact was last erased on the line of this phone number id (ISO), if ever. */
  async erasedAt(phoneNumberId: string, contactDigest: string): Promise<string | undefined> {
    try {
      const out = await this.documents.send(new GetCommand({ TableName: this.tableName, Key: { pk: erasedMarkerKey(phoneNumberId, contactDigest) }, ConsistentRead: true }));
      return typeof out.Item?.erasedAt === 'string' ? out.Item.erasedAt : undefined;
    } catch (error) {
      // No erasures table (a deployment from before erasure): nobody can have been erased through it.
      if ((error as { name?: string }).name === 'ResourceNotFoundException') return undefined;
      throw unavailable(error);
    }
  }

  /** A write only the lease holder may make: a runner that lost its lease stops at its next checkpoint. */
  private async owned(id: string, owner: string, expression: string, values: Record<string, unknown>, names: Record<string, string> = {}): Promise<void> {
    try {
      await this.documents.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: id },
          UpdateExpression: expression,
          ConditionExpression: 'leaseOwner = :owner',
          ExpressionAttributeNames: Object.keys(names).length > 0 ? names : undefined,
          ExpressionAttributeValues: { ...values, ':owner': owner, ':at': this.now().toISOString() },
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) throw new RetryableError('erasure_unavailable', `Erasure ${id}: the lease was lost; another runner carries on`);
      throw unavailable(error);
    }
  }

  private async call<T>(send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (error) {
      throw unavailable(error);
    }
  }
}

/** A runner's identity for leases: one per process. */
export function newRunnerId(): string {
  return `runner-${randomUUID()}`;
}

function toRecord(item: Record<string, unknown>): ErasureRecord {
  const text = (name: string) => (typeof item[name] === 'string' ? (item[name] as string) : '');
  const batch = item.batch as { step?: unknown; ids?: unknown } | undefined;
  return {
    id: text('id'),
    lineId: text('lineId'),
    phoneNumberId: text('phoneNumberId'),
    contactDigest: text('contactDigest'),
    outboundContactKey: text('outboundContactKey'),
    contactLastFour: text('contactLastFour'),
    status: text('status') as ErasureRecord['status'],
    requestedAt: text('requestedAt'),
    requestedBy: text('requestedBy') === 'console' ? 'console' : 'api',
    updatedAt: text('updatedAt'),
    ...(typeof item.completedAt === 'string' ? { completedAt: item.completedAt } : {}),
    counts: Object.fromEntries(Object.entries((item.counts as Record<string, unknown>) ?? {}).map(([k, v]) => [k, Number(v)])),
    stepsDone: Array.isArray(item.stepsDone) ? item.stepsDone.map(String) : [],
    ...(batch && typeof batch.step === 'string' && Array.isArray(batch.ids) ? { batch: { step: batch.step, ids: batch.ids.map(String) } } : {}),
  };
}

function isConditionFailure(error: unknown): boolean {
  return (error as { name?: string })?.name === 'ConditionalCheckFailedException';
}

function unavailable(error: unknown): RetryableError {
  if (error instanceof RetryableError) return error;
  return new RetryableError('erasure_unavailable', `The erasures table failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}
