import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
  type MessageAttributeValue,
} from '@aws-sdk/client-sqs';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { RetryableError } from '../../src/errors';
import { startAwsStandIns, type AwsStandIns } from '../../src/local/aws-standins';
import { createLogger } from '../../src/observability/logger';
import { createRegistry, type Registry } from '../../src/observability/metrics';
import { ClaimCheckReader } from '../../src/queue/claim-check-reader';
import { DlqParker } from '../../src/queue/dlq';
import type { ReceivedMessage } from '../../src/queue/message';
import { DEFAULT_RETRY_POLICY, SqsPoller, retryDelaySeconds, type HandlerOutcome, type SqsPollerOptions } from '../../src/queue/poller';
import { SqsBatcher, type SqsBatchResponse } from '../../src/queue/sqs-batcher';
import { createQueuePair } from '../support/aws';

const REGION = 'us-east-1';
let standIns: AwsStandIns;
let admin: SQSClient;
let queueCount = 0;

beforeAll(async () => {
  standIns = await startAwsStandIns();
  admin = new SQSClient({ region: REGION, endpoint: standIns.endpoints.sqs, credentials: standIns.credentials });
});
afterAll(async () => {
  admin.destroy();
  await standIns.stop();
});

/** A queue and its DLQ of their own per test, on the real local-aws-sqs. */
async function freshQueues(options: { visibilityTimeoutSeconds: number; maxReceiveCount: number }) {
  return createQueuePair(admin, `poller-${++queueCount}`, options);
}

/** An SQS client that counts the calls it really makes, by command. */
function countingClient() {
  const calls: Record<string, number> = {};
  const sqs = new SQSClient({ region: REGION, endpoint: standIns.endpoints.sqs, credentials: standIns.credentials });
  sqs.middlewareStack.add(
    (next, context) => async (args) => {
      const op = (context.commandName ?? 'unknown').replace(/Command$/, '');
      calls[op] = (calls[op] ?? 0) + 1;
      return next(args);
    },
    { step: 'initialize', name: 'countCalls' },
  );
  return { sqs, calls };
}

function captureLogs() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: createLogger({ level: 'info', destination }), lines };
}

interface Harness {
  poller: SqsPoller;
  registry: Registry;
  calls: Record<string, number>;
  logs: string[];
  sqs: SQSClient;
}
const harnesses: Harness[] = [];

function makePoller(options: Partial<SqsPollerOptions> & Pick<SqsPollerOptions, 'queueUrl' | 'handler'>): Harness {
  const { sqs, calls } = countingClient();
  const registry = createRegistry({ defaultMetrics: false });
  const { logger, lines } = captureLogs();
  const poller = new SqsPoller({
    sqs,
    logger,
    registry,
    concurrency: 8,
    waitTimeSeconds: 0, // local-aws-sqs holds a long poll until the batch is full; real SQS answers at the first message
    visibilityTimeoutSeconds: 30,
    pauseCheckMs: 50,
    shutdownTimeoutMs: 5000,
    ...options,
  });
  const harness = { poller, registry, calls, logs: lines, sqs };
  harnesses.push(harness);
  return harness;
}

afterEach(async () => {
  for (const h of harnesses.splice(0)) {
    await h.poller.stop();
    h.sqs.destroy();
  }
});

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((sum, v) => sum + v.value, 0);
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 8000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function sendMany(queueUrl: string, bodies: string[], attributes: Record<string, MessageAttributeValue> = {}) {
  for (let i = 0; i < bodies.length; i += 10) {
    await admin.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: bodies.slice(i, i + 10).map((MessageBody, j) => ({ Id: String(j), MessageBody, MessageAttributes: attributes })),
      }),
    );
  }
}

/** Messages still on the queue, visible or not (deleted ones are gone). */
async function depth(queueUrl: string): Promise<number> {
  const out = await admin.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
  );
  return Number(out.Attributes?.ApproximateNumberOfMessages ?? 0);
}

/** Messages on a queue: visible, and hidden (in flight or waiting out a delay). */
async function queueCounts(queueUrl: string): Promise<{ visible: number; hidden: number }> {
  const out = await admin.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
  );
  return { visible: Number(out.Attributes?.ApproximateNumberOfMessages ?? 0), hidden: Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0) };
}

/** Receive and delete everything visible on a queue. */
async function drainQueue(queueUrl: string) {
  const all = [];
  for (;;) {
    const out = await admin.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageAttributeNames: ['All'] }));
    const messages = out.Messages ?? [];
    if (messages.length === 0) return all;
    all.push(...messages);
    await admin.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
  }
}

function deferred() {
  let release!: () => void;
  const promise = new Promise<void>((r) => (release = r));
  return { promise, release };
}

describe('SqsPoller against local-aws-sqs', () => {
  it('runs at most `concurrency` handlers at once, and one slow message does not hold up the others', async () => {
    const { queueUrl } = await freshQueues({ visibilityTimeoutSeconds: 30, maxReceiveCount: 5 });
    await sendMany(queueUrl, ['slow', ...Array.from({ length: 7 }, (_, i) => `fast-${i}`)]);
    const gate = deferred();
    const slowGate = deferred();
    let running = 0;
    let maxRunning = 0;
    const completed: string[] = [];
    const { poller } = makePoller({
      queueUrl,
      concurrency: 4,
      handler: async (msg) => {
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        await (msg.body.toString() === 'slow' ? slowGate.promise : gate.promise);
        running -= 1;
        completed.push(msg.body.toString());
        return { action: 'delete' };
      },
    });
    poller.start();

    await waitFor('4 handlers running', () => running === 4);
    await pause(300);
    expect(running).toBe(4);
    expect(poller.inFlightCount).toBe(4);

    gate.release();
    await waitFor('the 7 fast messages', () => completed.length === 7);
    expect(completed).not.toContain('slow');
    expect(running).toBe(1);
    expect(maxRunning).toBe(4);

    slowGate.release();
    await waitFor('the slow message', () => completed.length === 8);
    await poller.stop();
    expect(await depth(queueUrl)).toBe(0);
  });

  it('deletes handled messages in batches: 20 messages take at most 4 DeleteMessageBatch calls', async () => {
    const { queueUrl } = await freshQueues({ visibilityTimeoutSeconds: 30, maxReceiveCount: 5 });
    const bodies = Array.from({ length: 20 }, (_, i) => JSON.stringify({ n: i, text: 'olá 👋' }));
    await sendMany(queueUrl, bodies, { requestId: { DataType: 'String', StringValue: 'req-1' } });
    const seen: ReceivedMessage[] = [];
    const { poller, calls, registry } = makePoller({
      queueUrl,
      concurrency: 32,
      handler: async (msg) => {
        seen.push(msg);
        return { action: 'delete' };
      },
    });
    poller.start();
    await waitFor('20 deletes', async () => (await metric(registry, 'wa_ingress_worker_messages_deleted_total')) === 20);

    expect(seen.map((m) => m.body.toString('utf8')).sort()).toEqual([...bodies].sort());
    expect(seen[0]?.attributes.requestId).toBe('req-1');
    expect(seen[0]?.receiveCount).toBe(1);
    expect(await depth(queueUrl)).toBe(0);
    expect(calls.DeleteMessageBatch).toBeGreaterThanOrEqual(2);
    expect(calls.DeleteMessageBatch).toBeLessThanOrEqual(4);
    expect(calls.DeleteMessage).toBeUndefined();
    expect(await metric(registry, 'wa_ingress_sqs_calls_total', { operation: 'DeleteMessageBatch' })).toBe(calls.DeleteMessageBatch);
    expect(await metric(registry, 'wa_ingress_sqs_calls_total', { operation: 'ReceiveMessage' })).toBe(calls.ReceiveMessage);
    expect(await metric(registry, 'wa_ingress_worker_messages_received_total')).toBe(20);
  });

  it.each([
    [200, 'at most 8'],
    [0, 'more than 8'],
  ])('receiveGatherMs %p: 40 messages with staggered handlers take %s receives', async (receiveGatherMs) => {
    const { queueUrl } = await freshQueues({ visibilityTimeoutSeconds: 30, maxReceiveCount: 5 });
    await sendMany(queueUrl, Array.from({ length: 40 }, (_, i) => String(i)));
    let done = 0;
    let receivesWhenDone = 0;
    const { poller, calls } = makePoller({
      queueUrl,
      concurrency: 10,
      receiveLoops: 1,
      receiveGatherMs,
      handler: async (msg) => {
        await pause(20 + (Number(msg.body.toString()) % 10) * 8);
        if (++done === 40) receivesWhenDone = calls.ReceiveMessage ?? 0;
        return { action: 'delete' };
      },
    });
    poller.start();
    await waitFor('40 messages', () => done === 40);
    if (receiveGatherMs > 0) expect(receivesWhenDone).toBeLessThanOrEqual(8);
    else expect(receivesWhenDone).toBeGreaterThan(8);
  });

  it('retry: the message comes back after the delay with a growing receive count, then the redrive policy moves it to the DLQ', async () => {
    const { queueUrl, dlqUrl } = await freshQueues({ visibilityTimeoutSeconds: 30, maxReceiveCount: 3 });
    await admin.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: '{"poison":true}' }));
    const deliveries: { count: number; at: number }[] = [];
    const { poller, registry } = makePoller({
      queueUrl,
      retryBaseSeconds: 1,
      retryMaxSeconds: 1,
      handler: async (msg): Promise<HandlerOutcome> => {
        deliveries.push({ count: msg.receiveCount, at: Date.now() });
        return { action: 'retry', delaySeconds: 1, reason: 'bird_unavailable' };
      },
    });
    poller.start();

    let parked: string | undefined;
    await waitFor(
      'the message in the DLQ',
      async () => {
        const out = await admin.send(new ReceiveMessageCommand({ QueueUrl: dlqUrl, WaitTimeSeconds: 0 }));
        parked = out.Messages?.[0]?.Body;
        return parked !== undefined;
      },
      10_000,
    );
    expect(parked).toBe('{"poison":true}');
    expect(deliveries.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < deliveries.length; i++) {
      const [prev, next] = [deliveries[i - 1]!, deliveries[i]!];
      expect(next.count).toBeGreaterThan(prev.count);
      expect(next.at - prev.at).toBeGreaterThanOrEqual(900); // the 1 s delay, not the queue's 30 s
    }
    expect(await metric(registry, 'wa_ingress_worker_messages_retried_total', { cause: 'handler' })).toBe(deliveries.length);
    await poller.stop();
    expect(await depth(queueUrl)).toBe(0);
  });

  it('a thrown error is a retry, and RetryableError.retryAfterMs is its delay when longer than the backoff', async () => {
    const { queueUrl } = await freshQueues({ visibilityTimeoutSeconds: 30, maxReceiveCount: 10 });
    await admin.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'flaky' }));
    const counts: number[] = [];
    const { poller, registry } = makePoller({
      queueUrl,
      retryBaseSeconds: 1,
      retryMaxSeconds: 1,
      handler: async (msg) => {
        counts.push(msg.receiveCount);
        if (counts.length === 1) throw new RetryableError('media_unavailable', 'Graph did not answer', { retryAfterMs: 1000 });
        return { action: 'delete' };
      },
    });
    const started = Date.now();
    poller.start();
    await waitFor('the second delivery to be deleted', async () => (await metric(registry, 'wa_ingress_worker_messages_deleted_total')) === 1);
    expect(counts).toHaveLength(2);
    expect(counts[1]).toBeGreaterThan(counts[0]!);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await metric(registry, 'wa_ingress_worker_messages_retried_total', { cause: 'error' })).toBe(1);
    expect(await metric(registry, 'wa_ingress_worker_handler_duration_seconds', { outcome: 'error' })).toBeGreaterThan(0);
  });

  it('an open breaker (RetryableError with a short retryAfterMs on every receive) backs off more with each receive', async () => {
    const { queueUrl } = await freshQueues({ visibilityTimeoutSeconds: 30, maxReceiveCount: 100 });
    await admin.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'line whose flow host is down' }));
    const deliveries: { count: number; at: number }[] = [];
    const { poller } = makePoller({
      queueUrl,
      retryBaseSeconds: 1,
      retryMaxSeconds: 8,
      handler: async (msg) => {
        deliveries.push({ count: msg.receiveCount, at: Date.now() });
        throw new RetryableError('bird_circuit_open', 'Circuit to the flow host is open', { retryAfterMs: 1000 });
      },
    });
    poller.start();
    await waitFor('four deliveries', () => deliveries.length >= 4, 30_000);
    await poller.stop();
    for (let i = 1; i < deliveries.length; i++) {
      const [prev, next] = [deliveries[i - 1]!, deliveries[i]!];
      // Equal jitter: at least half of the step min(8, 2^(receiveCount-1)) seconds, never only the breaker's 1 s.
      const floorMs = (Math.min(8, 2 ** (prev.count - 1)) / 2) * 1000;
      expect(next.at - prev.at).toBeGreaterThanOrEqual(Math.max(900, floorMs - 100));
    }
    expect(deliveries[3]!.at - deliveries[2]!.at).toBeGreaterThanOrEqual(1900);
  }, 40_000);

  it('heartbeat: a handler running past the visibility timeout keeps its message hidden from other consumers', async () => {
    const { queueUrl } = await freshQueues({ visibilityTimeoutSeconds: 2, maxReceiveCount: 100 });
    await admin.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'long job' }));
    let handled = 0;
    const { poller, calls } = makePoller({
      queueUrl,
      visibilityTimeoutSeconds: 2,
      handler: async () => {
        handled += 1;
        await pause(4500);
        return { action: 'delete' };
      },
    });
    poller.start();
    await waitFor('the handler to start', () => handled === 1);

    const stolen: string[] = [];
    const until = Date.now() + 4000;
    while (Date.now() < until) {
      const out = await admin.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 0, VisibilityTimeout: 1 }));
      stolen.push(...(out.Messages ?? []).map((m) => m.Body ?? ''));
      await pause(150);
    }
    expect(stolen).toEqual([]);
    await waitFor('the delete', async () => (await depth(queueUrl)) === 0);
    expect(handled).toBe(1);
    expect(calls.ChangeMessageVisibilityBatch).toBeGreaterThanOrEqual(4);
  });

  it('claim check: the handler gets the S3 body; pointers that can never resolve are parked at once with their reason, never handled', async () => {
    const { queueUrl, dlqUrl } = await freshQueues({ visibilityTimeoutSeconds: 30, maxReceiveCount: 10 });
    const s3 = new S3Client({ region: REGION, endpoint: standIns.endpoints.s3, credentials: standIns.credentials, forcePathStyle: true });
    const bucket = 'poller-claims';
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const body = Buffer.from(JSON.stringify({ object: 'whatsapp_business_account', entry: [], pad: 'é'.repeat(300_000) }), 'utf8');
    const sha256 = createHash('sha256').update(body).digest('hex');
    const key = `claim-check/${sha256}.json`;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    const send = async (requestId: string, pointer: { bucket: string; key: string; sha256: string } | 'not a pointer') => {
      const messageBody = pointer === 'not a pointer' ? '{"hello":1}' : JSON.stringify({ claimCheck: { ...pointer, size: body.length } });
      const attribute = pointer === 'not a pointer' ? `s3://${bucket}/${key}` : `s3://${pointer.bucket}/${pointer.key}`;
      const attributes = { claimCheck: attribute, bodySha256: sha256, requestId };
      await admin.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: messageBody,
          MessageAttributes: Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, { DataType: 'String', StringValue: v }])),
        }),
      );
    };
    await send('good', { bucket, key, sha256 });
    await send('sha', { bucket, key, sha256: '0'.repeat(64) });
    await send('missing', { bucket, key: `claim-check/${'1'.repeat(64)}.json`, sha256: '1'.repeat(64) });
    await send('foreign', { bucket: 'someone-elses-bucket', key, sha256 });
    await send('invalid', 'not a pointer');

    const handled: ReceivedMessage[] = [];
    const parkerRegistry = createRegistry({ defaultMetrics: false });
    const { poller, registry, logs } = makePoller({
      queueUrl,
      claimChecks: new ClaimCheckReader({ s3, bucket }),
      parker: new DlqParker({ sqs: admin, dlqUrl, registry: parkerRegistry }),
      handler: async (msg) => {
        handled.push(msg);
        return { action: 'delete' };
      },
    });
    poller.start();
    await waitFor('four parked, one handled', async () => handled.length === 1 && (await metric(parkerRegistry, 'wa_ingress_worker_parked_total')) === 4, 10_000);
    await poller.stop();
    expect(await queueCounts(queueUrl)).toEqual({ visible: 0, hidden: 0 });

    expect(handled.map((m) => m.attributes.requestId)).toEqual(['good']);
    expect(handled[0]?.body.equals(body)).toBe(true);
    expect(handled[0]?.original.body).toContain(sha256);
    const parked = (await drainQueue(dlqUrl)).map((m) => [m.MessageAttributes?.requestId?.StringValue, m.MessageAttributes?.reason?.StringValue]);
    expect(parked.sort()).toEqual([
      ['foreign', 'claim_check_foreign_bucket'],
      ['invalid', 'claim_check_invalid'],
      ['missing', 'claim_check_missing'],
      ['sha', 'claim_check_sha256_mismatch'],
    ]);
    expect(await metric(registry, 'wa_ingress_worker_messages_retried_total', { cause: 'claim_check' })).toBe(0);
    expect(logs.some((l) => l.includes('"event":"message_parked"') && l.includes('claim_check_sha256_mismatch'))).toBe(true);

    // Without a parker (or when S3 cannot answer) the message is retried instead.
    await send('sha-again', { bucket, key, sha256: '0'.repeat(64) });
    const unparked = makePoller({ queueUrl, claimChecks: new ClaimCheckReader({ s3, bucket }), retryBaseSeconds: 1, retryMaxSeconds: 1, handler: async () => ({ action: 'delete' }) });
    unparked.poller.start();
    await waitFor('a claim-check retry', async () => (await metric(unparked.registry, 'wa_ingress_worker_messages_retried_total', { cause: 'claim_check' })) >= 1);
    await unparked.poller.stop();
    s3.destroy();
  });

  it('pause: receives nothing while shouldPause() is true, and resumes after', async () => {
    const { queueUrl } = await freshQueues({ visibilityTimeoutSeconds: 30, maxReceiveCount: 5 });
    await admin.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'wait for it' }));
    let paused = true;
    let handled = 0;
    const { poller, calls, registry } = makePoller({
      queueUrl,
      shouldPause: () => paused,
      handler: async () => {
        handled += 1;
        return { action: 'delete' };
      },
    });
    poller.start();
    await pause(500);
    expect(calls.ReceiveMessage).toBeUndefined();
    expect(handled).toBe(0);
    expect(await metric(registry, 'wa_ingress_worker_paused')).toBe(1);

    paused = false;
    await waitFor('the message after resuming', () => handled === 1, 3000);
    expect(await metric(registry, 'wa_ingress_worker_paused')).toBe(0);
  });

  it('a throwing shouldPause() is logged and does not stop the loop', async () => {
    const { queueUrl } = await freshQueues({ visibilityTimeoutSeconds: 30, maxReceiveCount: 5 });
    await admin.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'still flows' }));
    let handled = 0;
    const { poller, logs } = makePoller({
      queueUrl,
      shouldPause: () => {
        throw new Error('breaker state unreadable');
      },
      handler: async () => {
        handled += 1;
        return { action: 'delete' };
      },
    });
    poller.start();
    await waitFor('the message', () => handled === 1, 3000);
    expect(logs.some((l) => l.includes('shouldPause() threw'))).toBe(true);
  });

  it('stop(): in-flight handlers finish, deletes are flushed, nothing more is received', async () => {
    const { queueUrl } = await freshQueues({ visibilityTimeoutSeconds: 30, maxReceiveCount: 5 });
    await sendMany(queueUrl, ['a', 'b', 'c']);
    let started = 0;
    let finished = 0;
    const { poller, calls } = makePoller({
      queueUrl,
      deleteLingerMs: 1000, // longer than the handlers: only the flush in stop() can send the deletes in time
      handler: async () => {
        started += 1;
        await pause(400);
        finished += 1;
        return { action: 'delete' };
      },
    });
    poller.start();
    await waitFor('3 handlers', () => started === 3);
    const t0 = Date.now();
    await poller.stop();
    const receivesAtStop = calls.ReceiveMessage;
    expect(finished).toBe(3);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await depth(queueUrl)).toBe(0);

    await admin.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'after stop' }));
    await pause(200);
    expect(calls.ReceiveMessage).toBe(receivesAtStop);
    expect(await depth(queueUrl)).toBe(1);
  });

  it('stop(): handlers still running at the bound get their signal aborted, and their messages are handed back at once: nothing left hidden', async () => {
    const { queueUrl } = await freshQueues({ visibilityTimeoutSeconds: 30, maxReceiveCount: 5 });
    await sendMany(queueUrl, ['cooperative', 'stuck']);
    const signals = new Map<string, AbortSignal>();
    let released = 0;
    const { poller, logs, registry } = makePoller({
      queueUrl,
      shutdownTimeoutMs: 1200,
      handler: async (msg, context) => {
        const name = msg.body.toString();
        signals.set(name, context!.signal!);
        if (name === 'stuck') return new Promise<never>(() => undefined); // ignores its signal
        // Like the pipeline: on abort, give the claim back, then answer retry.
        await new Promise((resolve) => context!.signal!.addEventListener('abort', resolve, { once: true }));
        await pause(20);
        released += 1;
        throw new RetryableError('shutting_down', 'Shutdown: claim released');
      },
    });
    poller.start();
    await waitFor('both handlers', () => signals.size === 2);
    const t0 = Date.now();
    await poller.stop();
    const took = Date.now() - t0;
    expect(took).toBeLessThanOrEqual(1300);
    expect([...signals.values()].every((signal) => signal.aborted)).toBe(true);
    expect(released).toBe(1);
    // Visible again now, not after the 30 s visibility timeout.
    expect(await queueCounts(queueUrl)).toEqual({ visible: 2, hidden: 0 });
    expect(await metric(registry, 'wa_ingress_worker_messages_handed_back_total', { when: 'in_flight' })).toBe(2);
    expect(await metric(registry, 'wa_ingress_worker_messages_retried_total')).toBe(0);
    expect(logs.some((l) => l.includes('Shutdown bound: aborting unfinished handlers'))).toBe(true);
  });

  it('stop(): a receive out at stop is not aborted: it returns, and what it took is handed back at once, never handled', async () => {
    const { queueUrl } = await freshQueues({ visibilityTimeoutSeconds: 30, maxReceiveCount: 5 });
    let handled = 0;
    const { poller, calls, registry } = makePoller({
      queueUrl,
      waitTimeSeconds: 2,
      receiveLoops: 1,
      shutdownTimeoutMs: 5000,
      handler: async () => {
        handled += 1;
        return { action: 'delete' };
      },
    });
    poller.start();
    await waitFor('a receive to be out', () => (calls.ReceiveMessage ?? 0) >= 1);
    await pause(100);
    await sendMany(queueUrl, ['a', 'b', 'c']);
    await poller.stop();
    expect(handled).toBe(0);
    expect(await queueCounts(queueUrl)).toEqual({ visible: 3, hidden: 0 });
    expect(await metric(registry, 'wa_ingress_worker_messages_handed_back_total', { when: 'received' })).toBe(3);
  });

  it('survives SQS being down: logs, backs off, and carries on when it is back', async () => {
    await standIns.stopSqs();
    let handled = 0;
    const { poller, logs } = makePoller({
      queueUrl: standIns.queueUrl,
      handler: async () => {
        handled += 1;
        return { action: 'delete' };
      },
    });
    poller.start();
    await waitFor('a logged receive failure', () => logs.some((l) => l.includes('ReceiveMessage failed')), 5000);
    await standIns.startSqs();
    await admin.send(new SendMessageCommand({ QueueUrl: standIns.queueUrl, MessageBody: 'back' }));
    await waitFor('the message after the outage', () => handled === 1, 15_000);
  }, 30_000);
});

describe('retryDelaySeconds', () => {
  const policy = DEFAULT_RETRY_POLICY;
  it.each([
    // [outcome delay, receiveCount, random, expected]
    [undefined, 1, 1, 10],
    [undefined, 1, 0, 5],
    [undefined, 2, 1, 20],
    [undefined, 4, 1, 80],
    [undefined, 20, 1, 1000],
    [undefined, 20, 0, 500],
    // The handler's delay is a floor: longer wins, shorter never cuts the backoff.
    [30, 1, 0.5, 30],
    [30, 7, 0.5, 480],
    [0, 3, 0.5, 30],
    [100_000, 1, 0.5, 43_200],
    [-5, 1, 0.5, 8],
  ])('delay %p, receive #%p, random %p → %p s', (delaySeconds, receiveCount, random, expected) => {
    expect(retryDelaySeconds({ delaySeconds }, receiveCount, policy, () => random)).toBe(expected);
  });

  it('an open Bird breaker (a retry after its ≤ 30 s half-open wait, every time) still spends 20 receives over 2–4 hours, not 10 minutes', () => {
    // What the pipeline hands back while a line's Flow host is down: the breaker's remaining wait.
    const breakerOpen = { delaySeconds: 30 };
    const total = (random: number) =>
      Array.from({ length: 20 }, (_, i) => retryDelaySeconds(breakerOpen, i + 1, DEFAULT_RETRY_POLICY, () => random)).reduce((a, b) => a + b, 0);
    expect(total(0)).toBeGreaterThanOrEqual(7100); // ~1 h 59 min at the earliest
    expect(total(1)).toBeLessThanOrEqual(4 * 3600);
    const delays = Array.from({ length: 20 }, (_, i) => retryDelaySeconds(breakerOpen, i + 1, DEFAULT_RETRY_POLICY, () => 0.5));
    for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1]!);
  });

  it('never computes a zero backoff', () => {
    expect(retryDelaySeconds({}, 1, { baseSeconds: 1, maxSeconds: 1 }, () => 0)).toBe(1);
  });
});

describe('SqsBatcher', () => {
  it('retries the entries that failed on a 200 (not the sender faults), and flush() waits for the retry', async () => {
    const sent: string[][] = [];
    let firstCall = true;
    const batcher = new SqsBatcher<{ handle: string }>({
      lingerMs: 5,
      retryDelayMs: 1,
      send: async (entries): Promise<SqsBatchResponse> => {
        sent.push(entries.map((e) => e.handle));
        if (!firstCall) return { Successful: entries.map((e) => ({ Id: e.Id })) };
        firstCall = false;
        return {
          Successful: [{ Id: entries[0]!.Id }],
          Failed: [
            { Id: entries[1]!.Id, Code: 'InternalError', SenderFault: false },
            { Id: entries[2]!.Id, Code: 'ReceiptHandleIsInvalid', SenderFault: true },
          ],
        };
      },
    });
    const results = Promise.all(['a', 'b', 'c'].map((handle) => batcher.add({ handle })));
    await batcher.flush();
    expect(sent).toEqual([['a', 'b', 'c'], ['b']]);
    expect(await results).toEqual([{ ok: true }, { ok: true }, { ok: false, code: 'ReceiptHandleIsInvalid', message: '', senderFault: true }]);
  });

  it('sends 10 at once without waiting for the linger, and gives up after maxAttempts on network errors', async () => {
    let calls = 0;
    const batcher = new SqsBatcher<{ n: number }>({
      lingerMs: 10_000,
      maxAttempts: 2,
      retryDelayMs: 1,
      send: async () => {
        calls += 1;
        throw Object.assign(new Error('socket hang up'), { name: 'NetworkingError' });
      },
    });
    const results = await Promise.all(Array.from({ length: 10 }, (_, n) => batcher.add({ n })));
    expect(calls).toBe(2);
    expect(results.every((r) => !r.ok && r.code === 'NetworkingError')).toBe(true);
  });

  it('reports a stale receipt handle from the real DeleteMessageBatch as a failed entry', async () => {
    const { queueUrl } = await freshQueues({ visibilityTimeoutSeconds: 30, maxReceiveCount: 5 });
    const batcher = new SqsBatcher<{ ReceiptHandle: string }>({
      lingerMs: 1,
      send: (Entries) => admin.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries })),
    });
    const result = await batcher.add({ ReceiptHandle: 'not-a-receipt-handle' });
    expect(result.ok).toBe(false);
  });
});
