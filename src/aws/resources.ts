import {
  CreateTableCommand,
  DescribeTableCommand,
  ResourceNotFoundException,
  UpdateTableCommand,
  type CreateTableCommandInput,
} from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import type { AwsClients } from './clients';

/**
 * The table schemas infra/ declares (infra/lib): keep both in step.
 * Lines: `lineId` key, `byPhoneNumberId` and `byWabaId` indexes. Dedupe: `pk` key, TTL on `expiresAt`.
 * Outbound: `pk` key, `byWamid`, `byLine`, `byContact`, `byPending` indexes, TTL on `expiresAt`.
 * Erasures: `pk` key, `byPending` index, no TTL.
 */
export const LINES_BY_PHONE_NUMBER_INDEX = 'byPhoneNumberId';
/** Account-level webhooks (templates, account updates) name only the WABA: the worker finds its lines here. */
export const LINES_BY_WABA_INDEX = 'byWabaId';

export function linesTableSchema(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: 'lineId', AttributeType: 'S' },
      { AttributeName: 'phoneNumberId', AttributeType: 'S' },
      { AttributeName: 'wabaId', AttributeType: 'S' },
    ],
    KeySchema: [{ AttributeName: 'lineId', KeyType: 'HASH' }],
    GlobalSecondaryIndexes: [
      {
        IndexName: LINES_BY_PHONE_NUMBER_INDEX,
        KeySchema: [{ AttributeName: 'phoneNumberId', KeyType: 'HASH' }],
        Projection: { ProjectionType: 'ALL' },
      },
      {
        IndexName: LINES_BY_WABA_INDEX,
        KeySchema: [{ AttributeName: 'wabaId', KeyType: 'HASH' }],
        Projection: { ProjectionType: 'ALL' },
      },
    ],
  };
}

/** The journal's lookups over the dedupe records (src/journal): by line and time, by wamid, by contact. Never a Scan. */
export const JOURNAL_INDEXES = { byLine: 'byLineTime', byWamid: 'byWamid', byContact: 'byContact' } as const;
/** What the journal's lists read from an index; the journey and the normalised event stay on the item (one GetItem for the detail). */
export const JOURNAL_PROJECTED = ['status', 'kind', 'type', 'updatedAt', 'contact', 'wamid', 'lineId', 'parkReason', 'retries', 'duplicates'];

export function dedupeTableSchema(tableName: string): CreateTableCommandInput {
  const index = (IndexName: string, hash: string) => ({
    IndexName,
    KeySchema: [
      { AttributeName: hash, KeyType: 'HASH' as const },
      { AttributeName: 'receivedAt', KeyType: 'RANGE' as const },
    ],
    Projection: { ProjectionType: 'INCLUDE' as const, NonKeyAttributes: JOURNAL_PROJECTED },
  });
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: ['pk', 'lineId', 'receivedAt', 'wamid', 'contactHash'].map((AttributeName) => ({ AttributeName, AttributeType: 'S' as const })),
    KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
    // Sparse: only records the journal annotated (they have lineId, wamid, contactHash) appear in them.
    GlobalSecondaryIndexes: [
      index(JOURNAL_INDEXES.byLine, 'lineId'),
      index(JOURNAL_INDEXES.byWamid, 'wamid'),
      index(JOURNAL_INDEXES.byContact, 'contactHash'),
    ],
  };
}

/** Outbound records: statuses arrive naming the wamid only when Meta did not echo the outbound id. */
export const OUTBOUND_BY_WAMID_INDEX = 'byWamid';
/** A line's replies by time, and a contact's (hashed, so a listed index never shows the number): the journal's lookups. */
export const OUTBOUND_BY_LINE_INDEX = 'byLine';
export const OUTBOUND_BY_CONTACT_INDEX = 'byContact';
/**
 * The outbox: sparse, only records still pending (written, not yet claimed) carry `outboxShard`;
 * sorted by `outboxAt` (written: the creation time; moved forward by each re-enqueue), so a sweep
 * reads only the records pending past its threshold, each at most once per threshold. It projects
 * what re-enqueueing needs, so the sweep reads no item.
 */
export const OUTBOUND_PENDING_INDEX = 'byPending';
export const OUTBOUND_PENDING_PROJECTED = ['id', 'lineId', 'to', 'idempotencyKey', 'source', 'status', 'sendBody', 'createdAt'];

/** Outbound records: `pk` (the outbound id) key, TTL on `expiresAt`. */
export function outboundTableSchema(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: 'pk', AttributeType: 'S' },
      { AttributeName: 'wamid', AttributeType: 'S' },
      { AttributeName: 'lineId', AttributeType: 'S' },
      { AttributeName: 'contactKey', AttributeType: 'S' },
      { AttributeName: 'createdAt', AttributeType: 'S' },
      { AttributeName: 'outboxShard', AttributeType: 'S' },
      { AttributeName: 'outboxAt', AttributeType: 'S' },
    ],
    KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
    GlobalSecondaryIndexes: [
      { IndexName: OUTBOUND_BY_WAMID_INDEX, KeySchema: [{ AttributeName: 'wamid', KeyType: 'HASH' }], Projection: { ProjectionType: 'KEYS_ONLY' } },
      {
        IndexName: OUTBOUND_BY_LINE_INDEX,
        KeySchema: [
          { AttributeName: 'lineId', KeyType: 'HASH' },
          { AttributeName: 'createdAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
      {
        IndexName: OUTBOUND_BY_CONTACT_INDEX,
        KeySchema: [
          { AttributeName: 'contactKey', KeyType: 'HASH' },
          { AttributeName: 'createdAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
      {
        IndexName: OUTBOUND_PENDING_INDEX,
        KeySchema: [
          { AttributeName: 'outboxShard', KeyType: 'HASH' },
          { AttributeName: 'outboxAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: OUTBOUND_PENDING_PROJECTED },
      },
    ],
  };
}

/** Erasures not done yet (src/privacy/erasure): sparse, only items with `pending` appear, so the runner never scans. */
export const ERASURES_PENDING_INDEX = 'byPending';

/** Erasures (`pk`: `er_…` records, kept as the audit trail, and `erased#…` markers); no TTL. */
export function erasuresTableSchema(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: ['pk', 'pending', 'requestedAt'].map((AttributeName) => ({ AttributeName, AttributeType: 'S' as const })),
    KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
    GlobalSecondaryIndexes: [
      {
        IndexName: ERASURES_PENDING_INDEX,
        KeySchema: [
          { AttributeName: 'pending', KeyType: 'HASH' },
          { AttributeName: 'requestedAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ],
  };
}

export const CONTACTS_BY_WA_ID_INDEX = 'byWaId';
export const CONTACTS_BY_USER_ID_INDEX = 'byUserId';
export const CONTACTS_BY_GROUP_INDEX = 'byGroup';

/** Conversation state (src/conversation): one item per line and contact, found by wa_id, BSUID or group through KEYS_ONLY indexes. */
export function contactsTableSchema(tableName: string): CreateTableCommandInput {
  const index = (IndexName: string, hash: string) => ({ IndexName, KeySchema: [{ AttributeName: hash, KeyType: 'HASH' as const }], Projection: { ProjectionType: 'KEYS_ONLY' as const } });
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: 'pk', AttributeType: 'S' },
      { AttributeName: 'waIdKey', AttributeType: 'S' },
      { AttributeName: 'userIdKey', AttributeType: 'S' },
      { AttributeName: 'groupKey', AttributeType: 'S' },
    ],
    KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
    GlobalSecondaryIndexes: [index(CONTACTS_BY_WA_ID_INDEX, 'waIdKey'), index(CONTACTS_BY_USER_ID_INDEX, 'userIdKey'), index(CONTACTS_BY_GROUP_INDEX, 'groupKey')],
  };
}

async function ensureTable(clients: AwsClients, schema: CreateTableCommandInput): Promise<boolean> {
  try {
    const { Table } = await clients.dynamodb.send(new DescribeTableCommand({ TableName: schema.TableName }));
    // A table from an older version (an embedded DATA_DIR) gets the indexes it lacks.
    const present = new Set((Table?.GlobalSecondaryIndexes ?? []).map((i) => i.IndexName));
    const missing = (schema.GlobalSecondaryIndexes ?? []).filter((i) => !present.has(i.IndexName));
    for (const index of missing) {
      const hash = index.KeySchema?.map((k) => k.AttributeName) ?? [];
      await clients.dynamodb.send(
        new UpdateTableCommand({
          TableName: schema.TableName,
          AttributeDefinitions: schema.AttributeDefinitions?.filter((d) => hash.includes(d.AttributeName)),
          GlobalSecondaryIndexUpdates: [{ Create: { IndexName: index.IndexName, KeySchema: index.KeySchema, Projection: index.Projection } }],
        }),
      );
      await waitActive(clients, schema.TableName!);
    }
    return false;
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException)) throw error;
  }
  await clients.dynamodb.send(new CreateTableCommand(schema));
  await waitActive(clients, schema.TableName!);
  return true;
}

async function waitActive(clients: AwsClients, tableName: string): Promise<void> {
  // Wait for ACTIVE: dynalite and DynamoDB both create asynchronously.
  for (let attempt = 0; attempt < 100; attempt++) {
    const { Table } = await clients.dynamodb.send(new DescribeTableCommand({ TableName: tableName }));
    const indexesActive = (Table?.GlobalSecondaryIndexes ?? []).every((i) => i.IndexStatus === 'ACTIVE');
    if (Table?.TableStatus === 'ACTIVE' && indexesActive) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Table ${tableName} did not become ACTIVE`);
}

async function ensureBucket(clients: AwsClients, bucket: string): Promise<boolean> {
  try {
    await clients.s3.send(new HeadBucketCommand({ Bucket: bucket }));
    return false;
  } catch {
    await clients.s3.send(new CreateBucketCommand({ Bucket: bucket }));
    return true;
  }
}

export interface ResourceNames {
  linesTable: string;
  dedupeTable: string;
  bucket: string;
  /** DYNAMODB_OUTBOUND_TABLE; omitted by callers that need no outbound records. */
  outboundTable?: string;
  /** DYNAMODB_ERASURES_TABLE; omitted by callers that need no erasures. */
  erasuresTable?: string;
  /** DYNAMODB_CONTACTS_TABLE; omitted by callers that keep no conversation state. */
  contactsTable?: string;
}

/** CREATE_MISSING_RESOURCES: create what infra/ would have created, with the same schema. Returns what was created. */
export async function ensureResources(clients: AwsClients, names: ResourceNames): Promise<string[]> {
  const created: string[] = [];
  if (await ensureTable(clients, linesTableSchema(names.linesTable))) created.push(`table ${names.linesTable}`);
  if (await ensureTable(clients, dedupeTableSchema(names.dedupeTable))) created.push(`table ${names.dedupeTable}`);
  if (names.outboundTable && (await ensureTable(clients, outboundTableSchema(names.outboundTable)))) created.push(`table ${names.outboundTable}`);
  if (names.erasuresTable && (await ensureTable(clients, erasuresTableSchema(names.erasuresTable)))) created.push(`table ${names.erasuresTable}`);
  if (names.contactsTable && (await ensureTable(clients, contactsTableSchema(names.contactsTable)))) created.push(`table ${names.contactsTable}`);
  if (await ensureBucket(clients, names.bucket)) created.push(`bucket ${names.bucket}`);
  return created;
}
