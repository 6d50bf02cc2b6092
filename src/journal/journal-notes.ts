import { UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { JournalBus } from './journal-bus';
import { MAX_JOURNEY_STEPS, type JourneyStep } from './journey';

/**
 * A step that happens outside the lease's own writes (a duplicate whose claim was refused): one
 * UpdateItem on the existing record, appending the step while the journey has room and counting it
 * in `counter` either way. Never creates a record (a duplicate of an expired event has none).
 */
export class JournalNotes {
  constructor(private readonly options: { documents: DynamoDBDocumentClient; tableName: string; bus?: JournalBus }) {}

  /** `key`: the record's `pk` (an event handle). Resolves false when there is no record. */
  async note(key: string, step: JourneyStep, counter?: 'duplicates'): Promise<boolean> {
    const update = (withStep: boolean) => {
      const names: Record<string, string> = { '#updatedAt': 'updatedAt', '#pk': 'pk' };
      const values: Record<string, unknown> = { ':at': step.at };
      const set = ['#updatedAt = :at'];
      let condition = 'attribute_exists(#pk)';
      if (withStep) {
        names['#journey'] = 'journey';
        Object.assign(values, { ':step': [step], ':empty': [], ':max': MAX_JOURNEY_STEPS });
        set.push('#journey = list_append(if_not_exists(#journey, :empty), :step)');
        condition += ' AND (attribute_not_exists(#journey) OR size(#journey) < :max)';
      }
      let add = '';
      if (counter) {
        names['#counter'] = counter;
        values[':one'] = 1;
        add = ' ADD #counter :one';
      }
      return this.options.documents.send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: { pk: key },
          UpdateExpression: `SET ${set.join(', ')}${add}`,
          ConditionExpression: condition,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
    };
    let lineId: unknown;
    try {
      lineId = (await update(true)).Attributes?.lineId;
    } catch (error) {
      if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
      try {
        // No record, or a full journey: count it only.
        lineId = (await update(false)).Attributes?.lineId;
      } catch (second) {
        if ((second as Error).name === 'ConditionalCheckFailedException') return false;
        throw second;
      }
    }
    if (typeof lineId === 'string') this.options.bus?.publish({ handle: key, lineId, step: step.step, at: step.at });
    return true;
  }
}
