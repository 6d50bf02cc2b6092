import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { ItemUpdates, type ItemUpdateInput } from '../../src/aws/item-updates';
import { startAwsHarness, type AwsHarness } from '../support/aws';

let aws: AwsHarness;
beforeAll(async () => {
  aws = await startAwsHarness();
});
afterAll(() => aws.stop());

const write = (pk: string): ItemUpdateInput => ({
  TableName: aws.names.dedupeTable,
  Key: { pk },
  UpdateExpression: 'SET #status = :status, #steps = list_append(if_not_exists(#steps, :empty), :steps), #note = :note ADD #attempts :one',
  ConditionExpression: 'attribute_not_exists(#pk) OR #status <> :status',
  ExpressionAttributeNames: { '#pk': 'pk', '#status': 'status', '#steps': 'steps', '#note': 'note', '#attempts': 'attempts' },
  ExpressionAttributeValues: { ':status': 'INPROGRESS', ':steps': [{ at: '2026-12-04T10:00:00.000Z', step: 'claimed', detail: undefined }], ':empty': [], ':note': { lineId: 'line-a', n: 1.5 }, ':one': 1 },
  ReturnValues: 'ALL_NEW',
});

describe('ItemUpdates', () => {
  it('writes and answers exactly as the DocumentClient does (marshalling, undefined dropped, ALL_NEW unmarshalled)', async () => {
    const viaDocuments = await new ItemUpdates(aws.clients.documents).update(write('items-documents'));
    const viaCached = await new ItemUpdates(aws.clients.documents, aws.clients.itemUpdates).update(write('items-cached'));
    expect(viaCached.Attributes).toEqual({ ...viaDocuments.Attributes, pk: 'items-cached' });
    expect(viaCached.Attributes).toEqual({ pk: 'items-cached', status: 'INPROGRESS', steps: [{ at: '2026-12-04T10:00:00.000Z', step: 'claimed' }], note: { lineId: 'line-a', n: 1.5 }, attempts: 1 });
    const { Item } = await aws.clients.documents.send(new GetCommand({ TableName: aws.names.dedupeTable, Key: { pk: 'items-cached' }, ConsistentRead: true }));
    expect(Item).toEqual(viaCached.Attributes);
  });

  it("fails a condition with DynamoDB's own error, as callers test for it", async () => {
    const updates = new ItemUpdates(aws.clients.documents, aws.clients.itemUpdates);
    await updates.update(write('items-condition'));
    await expect(updates.update(write('items-condition'))).rejects.toMatchObject({ name: 'ConditionalCheckFailedException' });
  });

  it('resolves the middleware stack once, not on every call (cacheMiddleware holds: no per-call options)', async () => {
    const updates = new ItemUpdates(aws.clients.documents, aws.clients.itemUpdates);
    const touch = (pk: string) =>
      updates.update({ TableName: aws.names.dedupeTable, Key: { pk }, UpdateExpression: 'ADD #n :one', ExpressionAttributeNames: { '#n': 'n' }, ExpressionAttributeValues: { ':one': 1 } });
    await touch('items-warm');
    const resolve = jest.spyOn(UpdateItemCommand.prototype, 'resolveMiddleware');
    try {
      for (let i = 0; i < 3; i++) await touch(`items-cache-${i}`);
      expect(resolve).not.toHaveBeenCalled();
    } finally {
      resolve.mockRestore();
    }
  });
});
