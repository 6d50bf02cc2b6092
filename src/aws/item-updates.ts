import { UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { UpdateCommand, type DynamoDBDocumentClient, type UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';

/** An UpdateItem in the DocumentClient's shape (plain JS values), whatever client sends it. */
export type ItemUpdateInput = Omit<UpdateCommandInput, 'AttributeUpdates' | 'Expected'>;

/** The DocumentClient's marshalling, as createAwsClients configures it. */
const MARSHALL_OPTIONS = { removeUndefinedValues: true };

/**
 * The hot path's conditional writes (dedupe claims and lease changes, outbound record changes).
 * With `cached` (createAwsClients' `itemUpdates`: a DynamoDBClient with cacheMiddleware) they skip
 * the DocumentClient, which cannot use that cache, and do its marshalling here: the SDK then
 * resolves the middleware stack once per command type instead of on every call (figures in
 * bench/client-calls.ts). The cache lasts only while every call on that client goes without
 * per-call options, so nothing else may use it. Without `cached`, the DocumentClient sends them.
 */
export class ItemUpdates {
  constructor(
    private readonly documents: DynamoDBDocumentClient,
    private readonly cached?: DynamoDBClient,
  ) {}

  async update(input: ItemUpdateInput): Promise<{ Attributes?: Record<string, unknown> }> {
    if (!this.cached) return this.documents.send(new UpdateCommand(input));
    const { Key, ExpressionAttributeValues, ...rest } = input;
    const out = await this.cached.send(
      new UpdateItemCommand({
        ...rest,
        Key: marshall(Key, MARSHALL_OPTIONS),
        ...(ExpressionAttributeValues ? { ExpressionAttributeValues: marshall(ExpressionAttributeValues, MARSHALL_OPTIONS) } : {}),
      }),
    );
    return out.Attributes ? { Attributes: unmarshall(out.Attributes) } : {};
  }
}
