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

  it("take SQS bodies without the SDK's MD5 check (TLS guards them in transit)", async () => {
    // Answers ReceiveMessage with a body whose MD5 does not match: the SDK's check would throw.
    const sqs = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.setHeader('content-type', 'application/x-amz-json-1.0');
        res.end(JSON.stringify({ Messages: [{ MessageId: 'm1', ReceiptHandle: 'r1', Body: 'hello', MD5OfBody: '00000000000000000000000000000000' }] }));
      });
    });
    await new Promise<void>((r) => sqs.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(sqs.address() as { port: number }).port}`;
    const clients = createAwsClients({ region: 'us-east-1', endpoints: { sqs: url, dynamodb: url, s3: url }, forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    try {
      const out = await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: `${url}/000000000000/q` }));
      expect(out.Messages?.map((m) => m.Body)).toEqual(['hello']);
    } finally {
      clients.destroy();
      sqs.closeAllConnections();
      await new Promise<void>((r) => sqs.close(() => r()));
    }
  });

  it("give the SDK a logger without info or error, so its logger middleware builds no redacted copies", () => {
    const clients = createAwsClients({ region: 'us-east-1', endpoints: { sqs: endpoint, dynamodb: endpoint, s3: endpoint }, forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    try {
      for (const client of [clients.sqs, clients.dynamodb, clients.documents, clients.s3, clients.secrets]) {
        const logger = client.config.logger as unknown as Record<string, unknown>;
        expect([typeof logger.info, typeof logger.error, typeof logger.warn]).toEqual(['undefined', 'undefined', 'function']);
      }
    } finally {
      clients.destroy();
    }
  });
});
