import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient, UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import { ItemUpdates } from '../aws/item-updates';
import { PermanentError, RetryableError, type GatewayError } from '../errors';
import type { JournalBus } from '../journal/journal-bus';
import type { Counter } from '../observability/metrics';
import type { JourneyStep, OutboundError } from './record';

export type RecordUpdateInput = Omit<UpdateCommandInput, 'TableName' | 'Key' | 'ExpressionAttributeNames'>;

/**
 * One conditional UpdateItem on an outbound record, shared by every state change: counts it
 * (applied or refused), and publishes the journey steps it appended to the live tail.
 */
export class ConditionalRecordUpdate {
  private readonly updates: ItemUpdates;

  constructor(
    private readonly deps: {
      documents: DynamoDBDocumentClient;
      /** createAwsClients' itemUpdates (src/aws/item-updates.ts). */
      itemUpdates?: DynamoDBClient;
      tableName: string;
      writes: Counter<'operation' | 'result'>;
      journalBus?: JournalBus;
    },
  ) {
    this.updates = new ItemUpdates(deps.documents, deps.itemUpdates);
  }

  /** Undefined when the condition did not hold. `#name` stands for the attribute `name`. */
  async apply(operation: string, id: string, input: RecordUpdateInput): Promise<Record<string, unknown> | undefined> {
    const expressions = `${input.UpdateExpression ?? ''} ${input.ConditionExpression ?? ''}`;
    const names = Object.fromEntries([...expressions.matchAll(/#\w+/g)].map(([p]) => [p, p.slice(1)]));
    try {
      // ALL_NEW unless told: the record's line, for the live tail, comes with the write.
      const out = await this.updates.update({ TableName: this.deps.tableName, Key: { pk: id }, ExpressionAttributeNames: names, ReturnValues: 'ALL_NEW', ...input });
      this.deps.writes.inc({ operation, result: 'applied' });
      const lineId = out.Attributes?.lineId;
      const steps = (input.ExpressionAttributeValues?.[':step'] ?? []) as JourneyStep[];
      if (typeof lineId === 'string') for (const step of steps) this.deps.journalBus?.publish({ handle: id, lineId, step: step.step, at: step.at });
      return out.Attributes ?? {};
    } catch (error) {
      if (isConditionFailure(error)) {
        this.deps.writes.inc({ operation, result: 'refused' });
        return undefined;
      }
      throw storeFailure(operation, error);
    }
  }
}

export function journeyStep(now: number, step: JourneyStep['step'], detail?: string): JourneyStep {
  return detail === undefined ? { at: new Date(now).toISOString(), step } : { at: new Date(now).toISOString(), step, detail };
}

export function describeError(error: OutboundError): string {
  return error.code === undefined ? error.title : `${error.code} ${error.title}`;
}

export function isConditionFailure(error: unknown): boolean {
  return error instanceof Error && error.name === 'ConditionalCheckFailedException';
}

export function storeFailure(operation: string, error: unknown): GatewayError {
  const name = error instanceof Error ? error.name : 'UnknownError';
  if (name === 'ValidationException') {
    return new PermanentError('outbound_store_rejected', `DynamoDB rejected the outbound ${operation} as invalid (${name})`, { cause: error });
  }
  return new RetryableError(
    'outbound_store_unavailable',
    `outbound record ${operation} failed (${name}); check DynamoDB and that DYNAMODB_OUTBOUND_TABLE exists`,
    { cause: error },
  );
}
