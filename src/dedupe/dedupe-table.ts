import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient, UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import { ItemUpdates } from '../aws/item-updates';
import { PermanentError, RetryableError, type GatewayError } from '../errors';
import type { JournalBus } from '../journal/journal-bus';
import { mergeUpdateExpression, type JournalUpdate } from '../journal/journal-update';
import type { DedupeRecord } from './dedupe-store';
import type { LeaseJournal } from './event-lease';
import { eventHandle } from '../privacy/pseudonyms';

const DAY_SECONDS = 86_400;

export interface DedupeTableOptions {
  documents: DynamoDBDocumentClient;
  /** createAwsClients' itemUpdates: the updates and reads skip the DocumentClient (src/aws/item-updates.ts). */
  itemUpdates?: DynamoDBClient;
  tableName: string;
  /** DEDUPE_TTL_DAYS: how long a key is remembered after its last claim or park. */
  ttlDays: number;
  clock: () => number;
  journalBus?: JournalBus;
}

/**
 * The dedupe table as the claim and the lease writes both see it: one UpdateItem per state change
 * (the journal's clauses joined to it), a consistent read of a record that is still live, the
 * records' expiry, and the live tail told about steps once they are written.
 */
export class DedupeTable {
  readonly clock: () => number;
  private readonly ttlSeconds: number;
  private readonly updates: ItemUpdates;

  constructor(private readonly options: DedupeTableOptions) {
    this.clock = options.clock;
    this.updates = new ItemUpdates(options.documents, options.itemUpdates);
    this.ttlSeconds = Math.round(options.ttlDays * DAY_SECONDS);
  }

  /** An UpdateItem on `key`'s record; every `#name` in the expressions stands for the attribute `name`. */
  update(key: string, input: Omit<UpdateCommandInput, 'TableName' | 'Key' | 'ExpressionAttributeNames'>, journal?: JournalUpdate) {
    const names = placeholderNames(`${input.UpdateExpression ?? ''} ${input.ConditionExpression ?? ''}`);
    // The journal's clauses join this write (src/journal/journal-update.ts): no extra request.
    return this.updates.update({
      TableName: this.options.tableName,
      Key: { pk: storedKey(key) },
      ...input,
      UpdateExpression: mergeUpdateExpression(input.UpdateExpression ?? '', journal),
      ExpressionAttributeNames: { ...names, ...journal?.names },
      ExpressionAttributeValues: { ...input.ExpressionAttributeValues, ...journal?.values },
    });
  }

  /** The live record of `key`, or undefined when there is none or it has expired. */
  async read(key: string): Promise<DedupeRecord | undefined> {
    let item: Record<string, unknown> | undefined;
    try {
      ({ Item: item } = await this.updates.get({ TableName: this.options.tableName, Key: { pk: storedKey(key) }, ConsistentRead: true }));
    } catch (error) {
      throw storeFailure('read', key, error);
    }
    const record = item as DedupeRecord | undefined;
    if (!record || record.expiresAt < epochSeconds(this.clock())) return undefined;
    return record;
  }

  /** The TTL a record written at `now` gets. */
  expiresAt(now: number): number {
    return epochSeconds(now) + this.ttlSeconds;
  }

  /** After a write that carried the journal: its steps on the bus, for a live tail in this process. */
  published(key: string, journal: LeaseJournal | undefined): void {
    for (const step of journal?.steps ?? []) this.options.journalBus?.publish({ handle: storedKey(key), lineId: journal!.lineId, step: step.step, at: step.at });
  }

  /** The first claim's `received` step, which no list entry carries: the live tail hears it once. */
  publishReceived(key: string, lineId: string, at: string): void {
    this.options.journalBus?.publish({ handle: storedKey(key), lineId, step: 'received', at });
  }
}

/** The store's expressions are a handful of constants: each one's names are worked out once, not on every write. */
const namesByExpression = new Map<string, Record<string, string>>();

function placeholderNames(expressions: string): Record<string, string> {
  let names = namesByExpression.get(expressions);
  if (!names) {
    names = Object.fromEntries([...expressions.matchAll(/#\w+/g)].map(([placeholder]) => [placeholder, placeholder.slice(1)]));
    if (namesByExpression.size < 256) namesByExpression.set(expressions, names);
  }
  return names;
}

/**
 * The record's `pk`: the event key's handle, never the key itself (a key carries a wamid, which
 * carries the sender's number). Every `Key: { pk }` of the dedupe table is built from it (update()
 * and read() here); callers, the DLQ and Bird's Idempotency-Key keep the event key, and a
 * redelivery hashes to the same record.
 */
export function storedKey(eventKey: string): string {
  return eventHandle(eventKey);
}

export function epochSeconds(ms: number): number {
  return Math.floor(ms / 1000);
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'UnknownError';
}

export function isConditionFailure(error: unknown): boolean {
  return errorName(error) === 'ConditionalCheckFailedException';
}

/** A request DynamoDB rejects as malformed will be rejected again; everything else (throttling, 5xx, network, a missing table) may pass later. */
export function storeFailure(operation: string, key: string, error: unknown): GatewayError {
  const name = errorName(error);
  if (name === 'ValidationException') {
    return new PermanentError('dedupe_rejected', `DynamoDB rejected the dedupe ${operation} of ${key} as invalid (${name})`, { cause: error });
  }
  return new RetryableError(
    'dedupe_unavailable',
    `dedupe ${operation} of ${key} failed (${name}); the event will be retried. Check DynamoDB throttling, the network to DynamoDB and that DYNAMODB_DEDUPE_TABLE exists`,
    { cause: error },
  );
}
