import { GetItemCommand, PutItemCommand, QueryCommand as LowLevelQueryCommand, UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
  type GetCommandInput,
  type PutCommandInput,
  type QueryCommandInput,
  type UpdateCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';

/** An UpdateItem in the DocumentClient's shape (plain JS values), whatever client sends it. */
export type ItemUpdateInput = Omit<UpdateCommandInput, 'AttributeUpdates' | 'Expected'>;
/** A PutItem in the DocumentClient's shape. */
export type ItemPutInput = Omit<PutCommandInput, 'Expected' | 'ConditionalOperator'>;
/** A GetItem in the DocumentClient's shape. */
export type ItemGetInput = Omit<GetCommandInput, 'AttributesToGet'>;
/** A Query in the DocumentClient's shape (expressions only, no legacy conditions). */
export type ItemQueryInput = Omit<QueryCommandInput, 'KeyConditions' | 'QueryFilter' | 'AttributesToGet' | 'ConditionalOperator'>;

type Item = Record<string, unknown>;

/** The DocumentClient's marshalling, as createAwsClients configures it. */
const MARSHALL_OPTIONS = { removeUndefinedValues: true };
const marshalled = (values: Item | undefined) => (values ? marshall(values, MARSHALL_OPTIONS) : undefined);

/**
 * The hot path's item calls: the conditional writes (dedupe claims and lease changes, outbound
 * record create and changes, contact-state writes) and the reads beside them. With `cached`
 * (createAwsClients' `itemUpdates`: a DynamoDBClient with cacheMiddleware) they skip the
 * DocumentClient, which cannot use that cache, and do its marshalling here: the SDK then resolves
 * the middleware stack once per command type instead of on every call (figures in
 * bench/client-calls.ts). The cache lasts only while every call on that client goes without
 * per-call options, so nothing else may use it. Without `cached`, the DocumentClient sends them.
 */
export class ItemUpdates {
  constructor(
    private readonly documents: DynamoDBDocumentClient,
    private readonly cached?: DynamoDBClient,
  ) {}

  async update(input: ItemUpdateInput): Promise<{ Attributes?: Item }> {
    if (!this.cached) return this.documents.send(new UpdateCommand(input));
    const { Key, ExpressionAttributeValues, ...rest } = input;
    const out = await this.cached.send(new UpdateItemCommand({ ...rest, Key: marshall(Key, MARSHALL_OPTIONS), ExpressionAttributeValues: marshalled(ExpressionAttributeValues) }));
    return out.Attributes ? { Attributes: unmarshall(out.Attributes) } : {};
  }

  async put(input: ItemPutInput): Promise<void> {
    if (!this.cached) {
      await this.documents.send(new PutCommand(input));
      return;
    }
    const { Item, ExpressionAttributeValues, ...rest } = input;
    await this.cached.send(new PutItemCommand({ ...rest, Item: marshall(Item, MARSHALL_OPTIONS), ExpressionAttributeValues: marshalled(ExpressionAttributeValues) }));
  }

  async get(input: ItemGetInput): Promise<{ Item?: Item }> {
    if (!this.cached) return this.documents.send(new GetCommand(input));
    const { Key, ...rest } = input;
    const out = await this.cached.send(new GetItemCommand({ ...rest, Key: marshall(Key, MARSHALL_OPTIONS) }));
    return out.Item ? { Item: unmarshall(out.Item) } : {};
  }

  async query(input: ItemQueryInput): Promise<{ Items?: Item[]; LastEvaluatedKey?: Item }> {
    if (!this.cached) return this.documents.send(new QueryCommand(input));
    const { ExpressionAttributeValues, ExclusiveStartKey, ...rest } = input;
    const out = await this.cached.send(
      new LowLevelQueryCommand({ ...rest, ExpressionAttributeValues: marshalled(ExpressionAttributeValues), ExclusiveStartKey: marshalled(ExclusiveStartKey) }),
    );
    return {
      ...(out.Items ? { Items: out.Items.map((item) => unmarshall(item)) } : {}),
      ...(out.LastEvaluatedKey ? { LastEvaluatedKey: unmarshall(out.LastEvaluatedKey) } : {}),
    };
  }
}
