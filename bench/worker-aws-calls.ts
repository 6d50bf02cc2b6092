import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SQSClient } from '@aws-sdk/client-sqs';

const DYNAMO_WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem', 'TransactWriteItems']);
const DYNAMO_READS = new Set(['GetItem', 'Query', 'Scan', 'BatchGetItem', 'TransactGetItems']);

export type CallCounts = Record<string, number>;

export interface AwsCallFigures {
  sqs: CallCounts;
  /** `Operation table` → count. */
  dynamodb: CallCounts;
}

export function sum(counts: CallCounts, keep: (name: string) => boolean = () => true): number {
  return Object.entries(counts).reduce((n, [name, count]) => n + (keep(name) ? count : 0), 0);
}

export const isDynamoWrite = (key: string) => DYNAMO_WRITES.has(key.split(' ')[0]!);
export const isDynamoRead = (key: string) => DYNAMO_READS.has(key.split(' ')[0]!);

/**
 * Counts every command the SDK clients send, by operation (and DynamoDB table), with a middleware
 * on each client's stack: it sees the worker's calls whichever component makes them. The
 * DocumentClient shares its DynamoDBClient's stack, so counting there covers both. Counted once per
 * command at the initialize step: SDK-internal retries of the same command are not extra calls here.
 */
export class AwsCallCounter {
  private readonly counts: AwsCallFigures = { sqs: {}, dynamodb: {} };
  /** Epoch ms of the first ReceiveMessage that returned messages. */
  firstReceiveAt: number | undefined;

  watch(clients: { sqs: SQSClient; dynamodb: DynamoDBClient; itemUpdates?: DynamoDBClient }): void {
    clients.sqs.middlewareStack.add(
      (next, context) => async (args) => {
        const operation = operationOf(context.commandName);
        bump(this.counts.sqs, operation);
        const out = await next(args);
        const messages = (out.output as { Messages?: unknown[] }).Messages;
        if (operation === 'ReceiveMessage' && messages && messages.length > 0) this.firstReceiveAt ??= Date.now();
        return out;
      },
      { step: 'initialize', name: 'benchSqsCallCounter' },
    );
    // The hot path's updates go through their own client (src/aws/item-updates.ts): count there too.
    for (const dynamodb of [clients.dynamodb, ...(clients.itemUpdates ? [clients.itemUpdates] : [])]) {
      dynamodb.middlewareStack.add(
        (next, context) => async (args) => {
          const table = (args.input as { TableName?: string }).TableName ?? '-';
          bump(this.counts.dynamodb, `${operationOf(context.commandName)} ${table}`);
          return next(args);
        },
        { step: 'initialize', name: 'benchDynamoCallCounter' },
      );
    }
  }

  snapshot(): AwsCallFigures {
    return { sqs: { ...this.counts.sqs }, dynamodb: { ...this.counts.dynamodb } };
  }
}

function operationOf(commandName: string | undefined): string {
  return (commandName ?? 'Unknown').replace(/Command$/, '');
}

function bump(counts: CallCounts, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}
