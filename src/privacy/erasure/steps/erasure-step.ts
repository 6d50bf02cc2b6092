import { DeleteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { RetryableError } from '../../../errors';
import type { ErasureTarget } from '../erasure';

/**
 * One store's share of an erasure. The runner asks for a batch of what is left (`find`), writes the
 * batch's ids on the record, removes them (`remove`), then adds their number to the step's count.
 * `remove` must be idempotent: after a crash the runner removes the recorded batch again, and counts
 * it once. `find` returns nothing once the contact has nothing left in the store.
 *
 * New stores a contact's data reaches (per-contact state, an archive) add a step to the list the
 * runner is built with (src/privacy/erasure/index.ts); the record counts per step name.
 */
export interface ErasureStep {
  /** Stable: the record's counts and checkpoints are keyed by it. */
  readonly name: string;
  find(target: ErasureTarget, limit: number): Promise<string[]>;
  remove(target: ErasureTarget, ids: string[]): Promise<void>;
}

/** Deletes items by `pk`, one at a time (deleting one already gone succeeds, so a redone batch is harmless). */
export async function deleteItems(documents: DynamoDBDocumentClient, tableName: string, pks: string[], what: string): Promise<void> {
  for (const pk of pks) {
    try {
      await documents.send(new DeleteCommand({ TableName: tableName, Key: { pk } }));
    } catch (error) {
      throw new RetryableError('erasure_unavailable', `Erasure: deleting ${what} failed`, { cause: error });
    }
  }
}
