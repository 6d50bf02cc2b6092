import { QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { CONTACTS_BY_USER_ID_INDEX, CONTACTS_BY_WA_ID_INDEX } from '../../../aws/resources';
import { RetryableError } from '../../../errors';
import type { ErasureTarget } from '../erasure';
import { deleteItems, type ErasureStep } from './erasure-step';

/**
 * The contact's conversation state (src/conversation): its item, found by the digest the indexes are
 * keyed with (`<lineId>#<contactDigest>`, as a wa_id or as a BSUID), deleted whole: ids, window, pause.
 */
export class ContactStateErasureStep implements ErasureStep {
  readonly name = 'contact_state';

  constructor(private readonly options: { documents: DynamoDBDocumentClient; tableName: string }) {}

  find(target: ErasureTarget): Promise<string[]> {
    return contactStateKeys(this.options, target);
  }

  async remove(_target: ErasureTarget, ids: string[]): Promise<void> {
    await deleteItems(this.options.documents, this.options.tableName, ids, 'the contact state');
  }
}

/** The keys of the contact's state items on the line, found by its digest as a wa_id or as a BSUID. */
export async function contactStateKeys(options: { documents: DynamoDBDocumentClient; tableName: string }, target: ErasureTarget): Promise<string[]> {
  const found = new Set<string>();
  for (const [IndexName, attribute] of [
    [CONTACTS_BY_WA_ID_INDEX, 'waIdKey'],
    [CONTACTS_BY_USER_ID_INDEX, 'userIdKey'],
  ] as const) {
    try {
      const out = await options.documents.send(
        new QueryCommand({
          TableName: options.tableName,
          IndexName,
          KeyConditionExpression: '#k = :k',
          ExpressionAttributeNames: { '#k': attribute },
          ExpressionAttributeValues: { ':k': `${target.lineId}#${target.contactDigest}` },
        }),
      );
      for (const item of out.Items ?? []) if (typeof item.pk === 'string') found.add(item.pk);
    } catch (error) {
      throw new RetryableError('erasure_unavailable', 'Erasure: reading the contact state failed', { cause: error });
    }
  }
  return [...found];
}
