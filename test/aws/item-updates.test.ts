import { GetItemCommand, PutItemCommand, QueryCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { ItemUpdates, type ItemUpdateInput } from '../../src/aws/item-updates';
import { CONTACTS_BY_WA_ID_INDEX } from '../../src/aws/resources';
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

  describe('puts, gets and queries (contact state, outbound create)', () => {
    const contact = (pk: string) => ({ pk, waIdKey: `line-a#${pk}`, version: 1, windowOpenUntil: 1_750_086_400_000, pausedBy: undefined, note: { by: 'api', at: [1, 'two'] } });
    const both = () => [new ItemUpdates(aws.clients.documents), new ItemUpdates(aws.clients.documents, aws.clients.itemUpdates)] as const;

    it('store and read back what the DocumentClient does (undefined dropped, numbers and nested values kept)', async () => {
      const [viaDocuments, viaCached] = both();
      await viaDocuments.put({ TableName: aws.names.contactsTable, Item: contact('put-documents'), ConditionExpression: 'attribute_not_exists(pk)' });
      await viaCached.put({ TableName: aws.names.contactsTable, Item: contact('put-cached'), ConditionExpression: 'attribute_not_exists(pk)' });
      for (const reader of both()) {
        const { Item } = await reader.get({ TableName: aws.names.contactsTable, Key: { pk: 'put-cached' }, ConsistentRead: true });
        const { Item: original } = await reader.get({ TableName: aws.names.contactsTable, Key: { pk: 'put-documents' }, ConsistentRead: true });
        expect(Item).toEqual({ pk: 'put-cached', waIdKey: 'line-a#put-cached', version: 1, windowOpenUntil: 1_750_086_400_000, note: { by: 'api', at: [1, 'two'] } });
        expect(original).toEqual({ ...Item, pk: 'put-documents', waIdKey: 'line-a#put-documents' });
        expect((await reader.get({ TableName: aws.names.contactsTable, Key: { pk: 'absent' }, ConsistentRead: true })).Item).toBeUndefined();
        const found = await reader.query({
          TableName: aws.names.contactsTable,
          IndexName: CONTACTS_BY_WA_ID_INDEX,
          KeyConditionExpression: '#k = :k',
          ExpressionAttributeNames: { '#k': 'waIdKey' },
          ExpressionAttributeValues: { ':k': 'line-a#put-cached' },
          Limit: 1,
        });
        expect(found.Items?.map((item) => item.pk)).toEqual(['put-cached']);
      }
    });

    it("a put's condition fails with DynamoDB's own error, with its values marshalled", async () => {
      const [, cached] = both();
      await cached.put({ TableName: aws.names.contactsTable, Item: contact('put-versioned'), ConditionExpression: 'attribute_not_exists(pk)' });
      const versioned = (expected: number) => cached.put({ TableName: aws.names.contactsTable, Item: { ...contact('put-versioned'), version: expected + 1 }, ConditionExpression: 'version = :v', ExpressionAttributeValues: { ':v': expected } });
      await expect(versioned(7)).rejects.toMatchObject({ name: 'ConditionalCheckFailedException' });
      await versioned(1);
      expect((await cached.get({ TableName: aws.names.contactsTable, Key: { pk: 'put-versioned' }, ConsistentRead: true })).Item?.version).toBe(2);
    });

    it('resolve the middleware stack once per command type (the cache holds for these calls too)', async () => {
      const [, cached] = both();
      const round = async (i: number) => {
        await cached.put({ TableName: aws.names.contactsTable, Item: contact(`put-cache-${i}`) });
        await cached.get({ TableName: aws.names.contactsTable, Key: { pk: `put-cache-${i}` }, ConsistentRead: true });
        await cached.query({ TableName: aws.names.contactsTable, IndexName: CONTACTS_BY_WA_ID_INDEX, KeyConditionExpression: '#k = :k', ExpressionAttributeNames: { '#k': 'waIdKey' }, ExpressionAttributeValues: { ':k': `line-a#put-cache-${i}` } });
      };
      await round(0);
      const spies = [PutItemCommand, GetItemCommand, QueryCommand].map((command) => jest.spyOn(command.prototype, 'resolveMiddleware'));
      try {
        for (let i = 1; i <= 3; i++) await round(i);
        for (const spy of spies) expect(spy).not.toHaveBeenCalled();
      } finally {
        for (const spy of spies) spy.mockRestore();
      }
    });
  });
});
