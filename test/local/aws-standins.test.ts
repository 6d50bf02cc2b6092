import { SendMessageCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { createAwsClients } from '../../src/aws/clients';
import { ensureResources } from '../../src/aws/resources';
import { startAwsStandIns, type AwsStandIns } from '../../src/local/aws-standins';

describe('AWS stand-ins', () => {
  let standIns: AwsStandIns;
  beforeAll(async () => {
    standIns = await startAwsStandIns();
  });
  afterAll(async () => standIns.stop());

  it('serve SQS, DynamoDB and S3 to the real SDK, and create the resources once', async () => {
    const clients = createAwsClients({
      region: 'us-east-1',
      endpoints: standIns.endpoints,
      forcePathStyle: true,
      credentials: standIns.credentials,
    });
    try {
      await clients.sqs.send(new SendMessageCommand({ QueueUrl: standIns.queueUrl, MessageBody: 'hello' }));
      const received = await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: standIns.queueUrl, WaitTimeSeconds: 1 }));
      expect(received.Messages?.[0]?.Body).toBe('hello');
      const names = { linesTable: 't-lines', dedupeTable: 't-dedupe', bucket: 't-bucket' };
      expect(await ensureResources(clients, names)).toEqual(['table t-lines', 'table t-dedupe', 'bucket t-bucket']);
      expect(await ensureResources(clients, names)).toEqual([]);
    } finally {
      clients.destroy();
    }
  });
});
