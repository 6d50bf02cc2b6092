import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { createServer, request, type Server } from 'node:http';
import { createBirdClient } from '../../src/bird';
import { DynamoDedupeStore } from '../../src/dedupe/dynamo-dedupe-store';
import { parseLines, upsertLines } from '../../src/lines/admin';
import { CachedLineRegistry } from '../../src/lines/registry';
import { ReferenceSecretResolver } from '../../src/lines/secrets';
import { DynamoLineStore } from '../../src/lines/store';
import { startBirdStandIn, type BirdStandIn } from '../../src/local/bird-standin';
import { S3MediaStore } from '../../src/media';
import { createRegistry } from '../../src/observability/metrics';
import { DlqParker } from '../../src/queue/dlq';
import type { ReceivedMessage } from '../../src/queue/message';
import { EventPipeline } from '../../src/worker/pipeline';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { capturedLogger } from '../support/logs';
import { LINES, lineFor, textMessage, webhookPayload } from '../support/worker';
import { eventHandle } from '../../src/privacy/pseudonyms';

/** In front of dynalite: answers 500 to every write that marks an event COMPLETED while `failing` is on. */
function startCompletionFailingProxy(target: string) {
  const state = { failing: true, refused: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (state.failing && String(req.headers['x-amz-target']).endsWith('.UpdateItem') && body.includes('COMPLETED')) {
        state.refused++;
        res.writeHead(500, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: 'injected' }));
        return;
      }
      const url = new URL(req.url ?? '/', target);
      const forward = request(url, { method: req.method, headers: { ...req.headers, host: url.host } }, (upstream) => {
        res.writeHead(upstream.statusCode ?? 500, upstream.headers);
        upstream.pipe(res);
      });
      forward.end(body);
    });
  });
  return new Promise<{ url: string; state: typeof state; close(): Promise<void> }>((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, state, close: () => new Promise<void>((r) => server.close(() => r())) }),
    ),
  );
}

let aws: AwsHarness;
let bird: BirdStandIn;
beforeAll(async () => {
  aws = await startAwsHarness();
  bird = await startBirdStandIn();
});
afterAll(async () => {
  await bird.stop();
  await aws.stop();
});

/** The worker's pipeline wired by hand on the harness, with the doc line pointing at the Bird stand-in; `documents` carries the dedupe writes. */
async function handBuiltPipeline(documents: DynamoDBDocumentClient): Promise<EventPipeline> {
  const registry = createRegistry({ defaultMetrics: false });
  const logger = capturedLogger().logger;
  const lineStore = new DynamoLineStore({ documents: aws.clients.documents, tableName: aws.names.linesTable });
  await upsertLines(lineStore, parseLines([lineFor('doc', bird.flowUrl())], { production: false }));
  return new EventPipeline({
    lines: new CachedLineRegistry({ store: lineStore, ttlMs: 0 }),
    secrets: new ReferenceSecretResolver({ production: false, cacheTtlMs: 0 }),
    dedupe: new DynamoDedupeStore({ documents, tableName: aws.names.dedupeTable, ttlDays: 15, leaseMs: 60_000, visibilityTimeoutSeconds: 60, registry }),
    media: new S3MediaStore({ s3: aws.clients.s3, bucket: aws.names.bucket, graphApiBaseUrl: 'https://graph.facebook.com', graphApiVersion: 'v25.0', allowedHosts: ['graph.facebook.com'], urlTtlSeconds: 60, logger, registry }),
    bird: createBirdClient({ logger, registry, timeoutMs: 10_000 }),
    parker: new DlqParker({ sqs: aws.clients.sqs, dlqUrl: aws.standIns.dlqUrl, registry }),
    logger,
    registry,
  });
}

it('never gives the claim back once Bird accepted: a failing COMPLETED write retries the message without a second delivery', async () => {
  const proxy = await startCompletionFailingProxy(aws.standIns.endpoints.dynamodb);
  const dynamodb = new DynamoDBClient({ region: 'us-east-1', endpoint: proxy.url, credentials: aws.standIns.credentials, maxAttempts: 1 });
  const pipeline = await handBuiltPipeline(DynamoDBDocumentClient.from(dynamodb));
  const body = webhookPayload([{ changes: [{ phoneNumberId: LINES.doc.phoneNumberId, messages: [textMessage('wamid.complete-fails')] }] }]);
  const message: ReceivedMessage = { messageId: 'm-1', receiveCount: 1, body: Buffer.from(body), attributes: {}, original: { body, attributes: {} } };

  const first = await pipeline.handle(message);
  expect(first).toMatchObject({ action: 'retry', reason: 'dedupe_complete_failed', delaySeconds: 60 });
  expect(proxy.state.refused).toBeGreaterThanOrEqual(2); // retried in place before giving up
  // The message comes back (here: at once); the claim is still held, so Bird is not called again.
  const second = await pipeline.handle({ ...message, receiveCount: 2 });
  expect(second).toMatchObject({ action: 'retry', reason: 'event_in_progress' });
  expect(bird.received()).toHaveLength(1);

  proxy.state.failing = false;
  dynamodb.destroy();
  await proxy.close();
});

it('on shutdown (the handler signal aborts) a delivery in progress gives its claim back and the message is handed back for a retry', async () => {
  const pipeline = await handBuiltPipeline(aws.clients.documents);
  bird.reset();
  bird.failNext(1, { delayMs: 5_000 }); // Bird is slow: the worker is stopped meanwhile
  const key = `msg#${LINES.doc.phoneNumberId}#wamid.shutdown-mid-delivery`;
  const body = webhookPayload([{ changes: [{ phoneNumberId: LINES.doc.phoneNumberId, messages: [textMessage('wamid.shutdown-mid-delivery'), textMessage('wamid.shutdown-not-started')] }] }]);
  const message: ReceivedMessage = { messageId: 'm-2', receiveCount: 1, body: Buffer.from(body), attributes: {}, original: { body, attributes: {} } };
  const shutdown = new AbortController();
  const started = Date.now();
  const handled = pipeline.handle(message, { signal: shutdown.signal });
  await new Promise((r) => setTimeout(r, 500));
  shutdown.abort();
  expect(await handled).toEqual({ action: 'retry', reason: 'shutting_down' });
  expect(Date.now() - started).toBeLessThan(2_000); // did not wait for Bird's 5 s
  const record = await aws.clients.documents.send(new GetCommand({ TableName: aws.names.dedupeTable, Key: { pk: eventHandle(key) }, ConsistentRead: true }));
  expect(record.Item).toMatchObject({ status: 'INPROGRESS', leaseUntil: 0 }); // released: the next receive claims at once
  expect(record.Item).not.toHaveProperty('owner');
  // The second event was not even claimed.
  const untouched = await aws.clients.documents.send(new GetCommand({ TableName: aws.names.dedupeTable, Key: { pk: eventHandle(`msg#${LINES.doc.phoneNumberId}#wamid.shutdown-not-started`) } }));
  expect(untouched.Item).toBeUndefined();
});

it('a Meta error notification: SQS redeliveries of one request reach Bird once, the same body in another request again', async () => {
  const pipeline = await handBuiltPipeline(aws.clients.documents);
  bird.reset();
  const body = JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: LINES.doc.wabaId, changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '15550783881', phone_number_id: LINES.doc.phoneNumberId }, errors: [{ code: 130429, title: 'Rate limit hit' }] } }] }],
  });
  const request = (requestId: string, receiveCount = 1): ReceivedMessage => ({
    messageId: `m-${requestId}`,
    receiveCount,
    body: Buffer.from(body),
    attributes: { requestId, receivedAt: '2026-01-01T00:00:00.000Z' },
    original: { body, attributes: {} },
  });
  expect(await pipeline.handle(request('11111111-1111-4111-8111-111111111111'))).toEqual({ action: 'delete' });
  expect(await pipeline.handle(request('11111111-1111-4111-8111-111111111111', 2))).toEqual({ action: 'delete' }); // SQS delivered it again
  expect(bird.received()).toHaveLength(1);
  expect(await pipeline.handle(request('22222222-2222-4222-8222-222222222222'))).toEqual({ action: 'delete' }); // a new POST, days later
  expect(bird.received().map((c) => c.idempotencyKey)).toEqual([
    expect.stringMatching(/^error#sha256:[0-9a-f]{64}#req:11111111-1111-4111-8111-111111111111$/),
    expect.stringMatching(/^error#sha256:[0-9a-f]{64}#req:22222222-2222-4222-8222-222222222222$/),
  ]);
});
