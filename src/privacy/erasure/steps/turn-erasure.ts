import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { RetryableError } from '../../../errors';
import { turnBufferKeyOfDigest } from '../../../worker/turns/turn-store';
import type { ErasureTarget } from '../erasure';
import { contactStateKeys } from './contact-state-erasure';
import { deleteItems, type ErasureStep } from './erasure-step';

/**
 * The contact's turn buffers on the line (pending messages, whole FlowBodies), deleted; their timers
 * then find no item and do nothing. A buffer is keyed by the conversation's key, the BSUID first
 * (src/meta/conversation.ts), so a person erased by wa_id may have theirs under their BSUID: the
 * other id comes from their contact-state item (`waIdKey`, `userIdKey`: `<lineId>#<digest>`), read
 * before the contact_state step deletes it.
 */
export class TurnBufferErasureStep implements ErasureStep {
  readonly name = 'turns';

  constructor(private readonly options: { documents: DynamoDBDocumentClient; tableName: string; contactsTableName?: string }) {}

  async find(target: ErasureTarget): Promise<string[]> {
    const digests = new Set([target.contactDigest, ...(await this.otherIdDigests(target))]);
    const found: string[] = [];
    for (const digest of digests) {
      const pk = turnBufferKeyOfDigest(target.lineId, digest);
      if (await this.read(pk, ['pk'])) found.push(pk);
    }
    return found;
  }

  async remove(_target: ErasureTarget, ids: string[]): Promise<void> {
    await deleteItems(this.options.documents, this.options.tableName, ids, 'the turn buffer');
  }

  private async otherIdDigests(target: ErasureTarget): Promise<string[]> {
    const contactsTable = this.options.contactsTableName;
    if (!contactsTable) return [];
    const prefix = `${target.lineId}#`;
    const digests: string[] = [];
    for (const pk of await contactStateKeys({ documents: this.options.documents, tableName: contactsTable }, target)) {
      const item = await this.read(pk, ['waIdKey', 'userIdKey'], contactsTable);
      for (const key of [item?.waIdKey, item?.userIdKey]) if (typeof key === 'string' && key.startsWith(prefix)) digests.push(key.slice(prefix.length));
    }
    return digests;
  }

  private async read(pk: string, attributes: string[], tableName = this.options.tableName): Promise<Record<string, unknown> | undefined> {
    try {
      const out = await this.options.documents.send(new GetCommand({ TableName: tableName, Key: { pk }, ProjectionExpression: attributes.join(', '), ConsistentRead: true }));
      return out.Item;
    } catch (error) {
      throw new RetryableError('erasure_unavailable', 'Erasure: reading the turn buffer failed', { cause: error });
    }
  }
}
