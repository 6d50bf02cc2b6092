import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { RetryableError } from '../../../errors';
import { turnBufferKeyOfDigest } from '../../../worker/turns/turn-store';
import type { ErasureTarget } from '../erasure';
import { deleteItems, type ErasureStep } from './erasure-step';

/**
 * The contact's turn buffer on the line (its pending messages, whole FlowBodies): one item, keyed by
 * the contact's digest, deleted. Its timer then finds no item and does nothing.
 */
export class TurnBufferErasureStep implements ErasureStep {
  readonly name = 'turns';

  constructor(private readonly options: { documents: DynamoDBDocumentClient; tableName: string }) {}

  async find(target: ErasureTarget): Promise<string[]> {
    const pk = turnBufferKeyOfDigest(target.lineId, target.contactDigest);
    try {
      const out = await this.options.documents.send(new GetCommand({ TableName: this.options.tableName, Key: { pk }, ProjectionExpression: 'pk', ConsistentRead: true }));
      return out.Item ? [pk] : [];
    } catch (error) {
      throw new RetryableError('erasure_unavailable', 'Erasure: reading the turn buffer failed', { cause: error });
    }
  }

  async remove(_target: ErasureTarget, ids: string[]): Promise<void> {
    await deleteItems(this.options.documents, this.options.tableName, ids, 'the turn buffer');
  }
}
