import { GetCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { JOURNAL_INDEXES } from '../../../aws/resources';
import { RetryableError } from '../../../errors';
import type { ErasureTarget } from '../erasure';
import type { ErasureStep } from './erasure-step';

/**
 * What a dedupe record keeps after its contact is erased: only what dedupe needs (the key, the state,
 * its lease and expiry). So a Meta retry of an erased message is still a duplicate and is not
 * delivered again, while the journal's facts, the stored event and the journey are gone. Leaving the
 * attributes the journal's indexes are keyed on (lineId, wamid, contactHash) drops the record from
 * every index too.
 */
export const DEDUPE_KEPT_ATTRIBUTES: ReadonlySet<string> = new Set([
  'pk',
  'status',
  'expiresAt',
  'owner',
  'leaseUntil',
  'completedAt',
  'parkedAt',
  'parkReason',
  'attempts',
]);

/** The journal's stored events and facts of the contact on the line: dedupe records found through the byContact index. */
export class JournalErasureStep implements ErasureStep {
  readonly name = 'journal';

  constructor(private readonly options: { documents: DynamoDBDocumentClient; tableName: string }) {}

  async find(target: ErasureTarget, limit: number): Promise<string[]> {
    const found: string[] = [];
    let cursor: Record<string, unknown> | undefined;
    // The digest is per deployment, not per line: other lines' records of the person are filtered out,
    // page by page (a filter applies after the page's limit).
    do {
      const out = await this.call('finding the journal records', () =>
        this.options.documents.send(
          new QueryCommand({
            TableName: this.options.tableName,
            IndexName: JOURNAL_INDEXES.byContact,
            KeyConditionExpression: 'contactHash = :digest',
            FilterExpression: 'lineId = :lineId',
            ExpressionAttributeValues: { ':digest': target.contactDigest, ':lineId': target.lineId },
            ProjectionExpression: 'pk',
            Limit: 100,
            ExclusiveStartKey: cursor,
          }),
        ),
      );
      found.push(...(out.Items ?? []).map((item) => String(item.pk)));
      cursor = out.LastEvaluatedKey;
    } while (cursor && found.length < limit);
    return found.slice(0, limit);
  }

  async remove(_target: ErasureTarget, keys: string[]): Promise<void> {
    for (const pk of keys) {
      const out = await this.call('reading a journal record', () =>
        this.options.documents.send(new GetCommand({ TableName: this.options.tableName, Key: { pk }, ConsistentRead: true })),
      );
      const strip = Object.keys(out.Item ?? {}).filter((name) => !DEDUPE_KEPT_ATTRIBUTES.has(name));
      if (strip.length === 0) continue;
      const names = Object.fromEntries(strip.map((name, i) => [`#a${i}`, name]));
      try {
        await this.options.documents.send(
          new UpdateCommand({
            TableName: this.options.tableName,
            Key: { pk },
            UpdateExpression: `REMOVE ${Object.keys(names).join(', ')}`,
            // Never recreate a record TTL removed meanwhile: an empty one would block nothing and hold nothing.
            ConditionExpression: 'attribute_exists(pk)',
            ExpressionAttributeNames: names,
          }),
        );
      } catch (error) {
        if ((error as { name?: string }).name === 'ConditionalCheckFailedException') continue;
        throw new RetryableError('erasure_unavailable', 'Erasure: stripping a journal record failed', { cause: error });
      }
    }
  }

  private async call<T>(what: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (error) {
      throw new RetryableError('erasure_unavailable', `Erasure: ${what} failed`, { cause: error });
    }
  }
}
