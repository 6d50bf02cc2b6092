import { UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/** The one watcher of a deployment holds this item of the dedupe table (see problem-store.ts for why that table). */
export const WATCH_LEASE_KEY = 'watch#lease';

export interface Lease {
  /** Takes the lease, or renews it when held; false when another holder's lease is still running. */
  acquire(): Promise<boolean>;
  /** Gives it up at shutdown, so a standby takes over at once instead of after the lease lapses. */
  release(): Promise<void>;
}

function isConditionFailure(error: unknown): boolean {
  return (error as { name?: string }).name === 'ConditionalCheckFailedException';
}

/**
 * A lease taken with a conditional write (an UpdateItem, which creates the item: the worker's role
 * may update the dedupe table, never put into it): it succeeds when no one holds it, when this holder does
 * (a renewal), or when the holder's lease has lapsed (a crashed or partitioned watcher). Time is
 * each process's clock; a skew between hosts only shortens or lengthens a takeover.
 */
export class DynamoLease implements Lease {
  private readonly clock: () => number;

  constructor(
    private readonly options: { documents: DynamoDBDocumentClient; tableName: string; holder: string; leaseMs: number; clock?: () => number },
  ) {
    this.clock = options.clock ?? Date.now;
  }

  async acquire(): Promise<boolean> {
    const now = this.clock();
    try {
      await this.options.documents.send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: { pk: WATCH_LEASE_KEY },
          UpdateExpression: 'SET holder = :me, leaseUntil = :until, expiresAt = :expires',
          ConditionExpression: 'attribute_not_exists(pk) OR holder = :me OR leaseUntil < :now',
          ExpressionAttributeValues: {
            ':me': this.options.holder,
            ':now': now,
            ':until': now + this.options.leaseMs,
            // The table's TTL removes a lease nobody renews for a day.
            ':expires': Math.ceil((now + this.options.leaseMs) / 1000) + 86_400,
          },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async release(): Promise<void> {
    try {
      await this.options.documents.send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: { pk: WATCH_LEASE_KEY },
          UpdateExpression: 'SET holder = :none, leaseUntil = :zero',
          ConditionExpression: 'holder = :me',
          ExpressionAttributeValues: { ':me': this.options.holder, ':none': '', ':zero': 0 },
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }
}
