import { QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { OUTBOUND_PENDING_INDEX, OUTBOUND_PENDING_PROJECTED } from '../aws/resources';
import { RetryableError } from '../errors';
import type { OutboundSource } from './job';
import { allOutboxShards, type OutboundState } from './record';

/** A record still in the outbox, as the byPending index projects it. */
export interface PendingOutbound {
  id: string;
  lineId: string;
  to: string;
  idempotencyKey: string;
  source: OutboundSource;
  status: OutboundState;
  /** The send body as JSON; absent only on a record written without one. */
  sendBody?: string;
  createdAt: string;
  /** When the record entered the outbox or was last enqueued by a sweep: the index's sort key. */
  outboxAt: string;
}

/** The outbox over the outbound records: which replies are still pending, and taking one out. */
export interface OutboxIndex {
  /** Pending records written (or last enqueued again) before `before` (ISO 8601), oldest first per shard; at most `limit`. */
  pendingBefore(before: string, limit: number): Promise<PendingOutbound[]>;
  /** A sweep enqueued it again at `at`: the next sweep leaves it alone until it is pending that long again. */
  requeued(id: string, at: string): Promise<void>;
  /** The record's job is accounted for elsewhere (parked in the DLQ, or the record moved on): no sweep enqueues it again. */
  leave(id: string): Promise<void>;
}

/** The byPending index of the outbound table: a Query per shard, never a Scan. */
export class DynamoOutboxIndex implements OutboxIndex {
  constructor(private readonly options: { documents: DynamoDBDocumentClient; tableName: string }) {}

  async pendingBefore(before: string, limit: number): Promise<PendingOutbound[]> {
    const found: PendingOutbound[] = [];
    try {
      for (const shard of allOutboxShards()) {
        let startKey: Record<string, unknown> | undefined;
        do {
          const out = await this.options.documents.send(
            new QueryCommand({
              TableName: this.options.tableName,
              IndexName: OUTBOUND_PENDING_INDEX,
              KeyConditionExpression: 'outboxShard = :shard AND outboxAt < :before',
              ExpressionAttributeValues: { ':shard': shard, ':before': before },
              ExpressionAttributeNames: Object.fromEntries(OUTBOUND_PENDING_PROJECTED.map((name) => [`#${name}`, name])),
              ProjectionExpression: [...OUTBOUND_PENDING_PROJECTED.map((name) => `#${name}`), 'outboxAt'].join(', '),
              Limit: Math.min(100, limit - found.length),
              ExclusiveStartKey: startKey,
            }),
          );
          found.push(...((out.Items ?? []) as PendingOutbound[]));
          startKey = out.LastEvaluatedKey as Record<string, unknown> | undefined;
        } while (startKey && found.length < limit);
        if (found.length >= limit) break;
      }
    } catch (error) {
      throw new RetryableError('outbound_store_unavailable', `the outbox query failed (${error instanceof Error ? error.name : 'unknown'}); check DynamoDB and the ${OUTBOUND_PENDING_INDEX} index`, { cause: error });
    }
    return found;
  }

  async requeued(id: string, at: string): Promise<void> {
    await this.update('requeued', id, { UpdateExpression: 'SET outboxAt = :at', ExpressionAttributeValues: { ':at': at } });
  }

  async leave(id: string): Promise<void> {
    await this.update('leave', id, { UpdateExpression: 'REMOVE outboxShard' });
  }

  /** Only while the record is in the outbox: a claim that took it out wins, and nothing is created. */
  private async update(what: string, id: string, change: { UpdateExpression: string; ExpressionAttributeValues?: Record<string, unknown> }): Promise<void> {
    try {
      await this.options.documents.send(
        new UpdateCommand({ TableName: this.options.tableName, Key: { pk: id }, ConditionExpression: 'attribute_exists(outboxShard)', ...change }),
      );
    } catch (error) {
      if (error instanceof Error && error.name === 'ConditionalCheckFailedException') return;
      throw new RetryableError('outbound_store_unavailable', `outbox ${what} of ${id} failed (${error instanceof Error ? error.name : 'unknown'})`, { cause: error });
    }
  }
}
