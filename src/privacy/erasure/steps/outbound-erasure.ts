import { QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { OUTBOUND_BY_CONTACT_INDEX } from '../../../aws/resources';
import { RetryableError } from '../../../errors';
import type { ErasureTarget } from '../erasure';
import { deleteItems, type ErasureStep } from './erasure-step';

/**
 * The replies sent to the contact on the line, found through the outbound table's byContact index
 * (`<lineId>#<sha256(to)>`), deleted whole: the record holds the number, the body and the wamid. A
 * job of the contact still on the outbound queue then finds no record and is parked
 * (`outbound_record_missing`) instead of being sent.
 */
export class OutboundErasureStep implements ErasureStep {
  readonly name = 'outbound';

  constructor(private readonly options: { documents: DynamoDBDocumentClient; tableName: string }) {}

  async find(target: ErasureTarget, limit: number): Promise<string[]> {
    try {
      const out = await this.options.documents.send(
        new QueryCommand({
          TableName: this.options.tableName,
          IndexName: OUTBOUND_BY_CONTACT_INDEX,
          KeyConditionExpression: 'contactKey = :key',
          ExpressionAttributeValues: { ':key': target.outboundContactKey },
          ProjectionExpression: 'pk',
          Limit: limit,
        }),
      );
      return (out.Items ?? []).map((item) => String(item.pk));
    } catch (error) {
      throw new RetryableError('erasure_unavailable', 'Erasure: finding the outbound records failed', { cause: error });
    }
  }

  async remove(_target: ErasureTarget, ids: string[]): Promise<void> {
    await deleteItems(this.options.documents, this.options.tableName, ids, 'an outbound record');
  }
}
