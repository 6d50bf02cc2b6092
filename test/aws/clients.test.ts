import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { createServer, type Server } from 'node:http';
import { createAwsClients } from '../../src/aws/clients';

describe('AWS clients', () => {
  let silent: Server;
  let endpoint: string;
  beforeAll(async () => {
    // Accepts connections and never answers: a half-dead peer.
    silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    endpoint = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    silent.closeAllConnections();
    await new Promise<void>((r) => silent.close(() => r()));
  });

  it('give up on a call that gets no answer within its deadline instead of hanging', async () => {
    const clients = createAwsClients(
      { region: 'us-east-1', endpoints: { sqs: endpoint, dynamodb: endpoint, s3: endpoint }, forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } },
      4,
      { sqs: 400, dynamodb: 300, s3: 300, secrets: 300 },
    );
    try {
      const started = Date.now();
      await expect(clients.dynamodb.send(new GetItemCommand({ TableName: 't', Key: { pk: { S: 'k' } } }))).rejects.toThrow();
      await expect(clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: `${endpoint}/000000000000/q` }))).rejects.toThrow();
      // The SDK retries a timed-out call (3 attempts by default); each attempt is bounded.
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      clients.destroy();
    }
  });
});
