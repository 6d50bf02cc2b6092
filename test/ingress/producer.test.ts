import { SQSClient } from '@aws-sdk/client-sqs';
import { createServer, request, type Server } from 'node:http';
import { S3ClaimCheckWriter } from '../../src/queue/claim-check-writer';
import { SqsBatchProducer } from '../../src/ingress/producer';
import { createProducerSqsClient } from '../../src/aws/clients';
import { createRegistry } from '../../src/observability/metrics';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { capturedLogger } from '../support/logs';

/**
 * A loopback proxy in front of local-aws-sqs that, for chosen SendMessageBatch calls, keeps one
 * entry back and reports it as failed inside a 200 answer, as SQS does under partial failure.
 */
function startPartialFailureProxy(target: string, failEntryOfCalls: (call: number) => boolean, senderFault = false) {
  let calls = 0;
  const failure = (Id: string) => ({ Id, SenderFault: senderFault, Code: senderFault ? 'InvalidParameterValue' : 'InternalError', Message: 'injected' });
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      let withheld: { Id: string } | undefined;
      if (req.headers['x-amz-target'] === 'AmazonSQS.SendMessageBatch' && failEntryOfCalls(++calls)) {
        const input = JSON.parse(body.toString('utf8')) as { Entries: Array<{ Id: string }> };
        withheld = input.Entries.shift();
        body = Buffer.from(JSON.stringify(input));
        if (input.Entries.length === 0) {
          // Nothing left to forward (SQS refuses an empty batch): answer for the withheld entry alone.
          res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
          res.end(JSON.stringify({ Successful: [], Failed: [failure(withheld!.Id)] }));
          return;
        }
      }
      const url = new URL(req.url ?? '/', target);
      const headers = { ...req.headers, host: url.host, 'content-length': String(body.length) };
      // The signature no longer matches the edited body; local-aws-sqs does not check signatures.
      const forward = request(url, { method: req.method, headers }, (upstream) => {
        const parts: Buffer[] = [];
        upstream.on('data', (c: Buffer) => parts.push(c));
        upstream.on('end', () => {
          let answer = Buffer.concat(parts);
          if (withheld) {
            const out = JSON.parse(answer.toString('utf8')) as { Failed?: unknown[] };
            out.Failed = [...(out.Failed ?? []), failure(withheld.Id)];
            answer = Buffer.from(JSON.stringify(out));
          }
          res.writeHead(upstream.statusCode ?? 500, { 'content-type': upstream.headers['content-type'] ?? 'application/x-amz-json-1.0', 'content-length': answer.length });
          res.end(answer);
        });
      });
      forward.end(body);
    });
  });
  return new Promise<{ url: string; calls: () => number; close: () => Promise<void> }>((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
        calls: () => calls,
        close: () => new Promise<void>((r) => server.close(() => r())),
      }),
    ),
  );
}

let aws: AwsHarness;
beforeAll(async () => {
  aws = await startAwsHarness();
});
afterAll(async () => aws.stop());

function producerVia(endpoint: string, timeoutMs = 3000, sqs: SQSClient = new SQSClient({ region: 'us-east-1', endpoint, credentials: aws.standIns.credentials })) {
  const registry = createRegistry({ defaultMetrics: false });
  const producer = new SqsBatchProducer({
    sqs,
    queueUrl: aws.standIns.queueUrl,
    claimCheck: new S3ClaimCheckWriter({ s3: aws.clients.s3, bucket: aws.names.bucket }),
    batchWindowMs: 5,
    timeoutMs,
    claimCheckThresholdBytes: 900 * 1024,
    logger: capturedLogger().logger,
    registry,
  });
  return { producer, sqs, registry };
}

describe('SqsBatchProducer', () => {
  it('retries an entry that failed inside a 200 answer; every payload lands exactly once', async () => {
    const proxy = await startPartialFailureProxy(aws.standIns.endpoints.sqs, (call) => call <= 2);
    const { producer, sqs, registry } = producerVia(proxy.url);
    const bodies = Array.from({ length: 10 }, (_, i) => `{"entry":[],"n":${i}}`);
    await Promise.all(bodies.map((b) => producer.enqueue({ body: Buffer.from(b), attributes: {} })));
    const messages = await aws.drainQueue();
    expect(messages.map((m) => m.Body).sort()).toEqual([...bodies].sort());
    expect(proxy.calls()).toBeGreaterThanOrEqual(3);
    const failures = await registry.getSingleMetric('wa_ingress_sqs_entry_failures_total')!.get();
    expect(failures.values.find((v) => v.labels.reason === 'InternalError')?.value).toBe(2);
    sqs.destroy();
    await proxy.close();
  });

  it('fails the caller (never resolves as accepted) when SQS refuses the entry as a sender fault', async () => {
    const proxy = await startPartialFailureProxy(aws.standIns.endpoints.sqs, () => true, true);
    const { producer, sqs } = producerVia(proxy.url);
    await expect(producer.enqueue({ body: Buffer.from('{"entry":[]}'), attributes: {} })).rejects.toMatchObject({ reason: 'sqs_entry_refused', retryable: true });
    expect(await aws.drainQueue()).toHaveLength(0);
    sqs.destroy();
    await proxy.close();
  });

  it('rejects after its timeout when SQS does not answer, and sends nothing later', async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const { producer, sqs } = producerVia(`http://127.0.0.1:${(silent.address() as { port: number }).port}`, 300);
    const started = Date.now();
    await expect(producer.enqueue({ body: Buffer.from('{"entry":[]}'), attributes: {} })).rejects.toMatchObject({ reason: 'sqs_timeout' });
    expect(Date.now() - started).toBeLessThan(1500);
    sqs.destroy();
    silent.closeAllConnections();
    await new Promise<void>((r) => silent.close(() => r()));
  });

  it('on its own cacheMiddleware client, resolves the SDK middleware stack once across batches (no per-call options) and lands every payload', async () => {
    const sqs = createProducerSqsClient({ region: 'us-east-1', endpoints: { sqs: aws.standIns.endpoints.sqs }, forcePathStyle: true, credentials: aws.standIns.credentials }, 3000);
    let stackBuilds = 0;
    // The factory runs each time the SDK resolves the stack: per call without the cache, once with it.
    sqs.middlewareStack.add((next) => (stackBuilds++, (args) => next(args)), { step: 'initialize', name: 'countStackBuilds' });
    const { producer } = producerVia(aws.standIns.endpoints.sqs, 3000, sqs);
    const bodies = Array.from({ length: 25 }, (_, i) => `{"entry":[],"n":${i}}`);
    for (let i = 0; i < bodies.length; i += 5) await Promise.all(bodies.slice(i, i + 5).map((b) => producer.enqueue({ body: Buffer.from(b), attributes: {} })));
    expect((await aws.drainQueue()).map((m) => m.Body).sort()).toEqual([...bodies].sort());
    expect(stackBuilds).toBe(1);
    sqs.destroy();
  });

  it('on its own client, a SendMessageBatch SQS never answers is ended by the client request timeout (socket closed), the payload answered at its deadline', async () => {
    let closed = 0;
    let connections = 0;
    const silent = createServer(() => undefined);
    silent.on('connection', (socket) => {
      connections++;
      socket.on('close', () => closed++);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const endpoint = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
    const sqs = createProducerSqsClient({ region: 'us-east-1', endpoints: { sqs: endpoint }, forcePathStyle: true, credentials: aws.standIns.credentials }, 400);
    const { producer } = producerVia(endpoint, 400, sqs);
    const started = Date.now();
    await expect(producer.enqueue({ body: Buffer.from('{"entry":[]}'), attributes: {} })).rejects.toMatchObject({ reason: 'sqs_timeout' });
    expect(Date.now() - started).toBeLessThan(1500);
    // The stuck call does not keep its socket: the client's timeout destroys it, with nothing else closing it.
    for (let i = 0; i < 40 && closed === 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(closed).toBe(1);
    // The call is not tried again behind the batcher's back (the SDK's own retries would hold the
    // conversation's group and a send slot for three timeouts): one attempt, one connection.
    await new Promise((r) => setTimeout(r, 1200));
    sqs.destroy();
    silent.closeAllConnections();
    await new Promise<void>((r) => silent.close(() => r()));
    expect(connections).toBe(1);
  });

  it('packs at most 10 entries and 1 MiB per batch', async () => {
    const proxy = await startPartialFailureProxy(aws.standIns.endpoints.sqs, () => false);
    const { producer, sqs, registry } = producerVia(proxy.url);
    const big = (i: number) => Buffer.from(`{"entry":[],"pad":"${String(i).padEnd(300 * 1024, 'x')}"}`);
    await Promise.all([...Array.from({ length: 6 }, (_, i) => producer.enqueue({ body: big(i), attributes: {} })), ...Array.from({ length: 25 }, (_, i) => producer.enqueue({ body: Buffer.from(`{"entry":[],"s":${i}}`), attributes: {} }))]);
    expect(await aws.drainQueue()).toHaveLength(31);
    const sizes = await registry.getSingleMetric('wa_ingress_sqs_send_batch_entries')!.get();
    const count = sizes.values.find((v) => (v as { metricName?: string }).metricName === 'wa_ingress_sqs_send_batch_entries_count')!.value;
    // 6 × 300 KiB need at least 2 batches (1 MiB each); 25 small ones at least 3 more.
    expect(count).toBeGreaterThanOrEqual(5);
    expect(proxy.calls()).toBe(count);
    sqs.destroy();
    await proxy.close();
  });
});
