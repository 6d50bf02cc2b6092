import { ReceiveMessageCommand, DeleteMessageBatchCommand, type Message } from '@aws-sdk/client-sqs';
import { DuplicateWindow } from '../../src/ingress/duplicate-window';
import { SqsBatchProducer } from '../../src/ingress/producer';
import { createRegistry } from '../../src/observability/metrics';
import { S3ClaimCheckWriter } from '../../src/queue/claim-check-writer';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { capturedLogger } from '../support/logs';

let aws: AwsHarness;
beforeAll(async () => {
  aws = await startAwsHarness({ fifo: true, queueName: 'producer' });
});
afterAll(async () => aws.stop());

async function drainInOrder(): Promise<Message[]> {
  const all: Message[] = [];
  for (;;) {
    const out = await aws.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: aws.standIns.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 30, AttributeNames: ['All'], MessageSystemAttributeNames: ['All'], MessageAttributeNames: ['All'] }),
    );
    const messages = out.Messages ?? [];
    if (messages.length === 0) return all;
    all.push(...messages);
    await aws.clients.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: aws.standIns.queueUrl, Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
  }
}

describe('SqsBatchProducer on a FIFO queue', () => {
  it('sends each payload under its group with the body sha256 as dedup id, a conversation in arrival order even across concurrent batches', async () => {
    const registry = createRegistry({ defaultMetrics: false });
    const producer = new SqsBatchProducer({
      sqs: aws.clients.sqs,
      queueUrl: aws.standIns.queueUrl,
      claimCheck: new S3ClaimCheckWriter({ s3: aws.clients.s3, bucket: aws.names.bucket }),
      batchWindowMs: 0,
      timeoutMs: 5000,
      // A 2 KiB threshold sends every fourth payload through S3: a claim check must not overtake the payloads before it.
      claimCheckThresholdBytes: 2048,
      maxInFlightBatches: 8,
      logger: capturedLogger().logger,
      registry,
    });
    const payloads = Array.from({ length: 40 }, (_, i) => ({
      body: Buffer.from(JSON.stringify({ entry: [], n: i, pad: i % 4 === 3 ? 'x'.repeat(3000) : '' })),
      attributes: {},
      routes: [{ groupId: i % 2 === 0 ? 'line:alice' : 'line:bob' }],
    }));
    // Not awaited one by one: all 40 are in the producer at once, over many concurrent batch calls.
    await Promise.all(payloads.map((p) => producer.enqueue(p)));
    const messages = await drainInOrder();
    const order = (group: string) =>
      messages
        .filter((m) => m.Attributes?.MessageGroupId === group)
        .map((m) => (m.MessageAttributes?.claimCheck ? `s3:${m.MessageAttributes.bodySha256?.StringValue}` : String((JSON.parse(m.Body!) as { n: number }).n)));
    const expected = (parity: number) =>
      payloads
        .map((p, n) => ({ p, n }))
        .filter(({ n }) => n % 2 === parity)
        .map(({ p, n }) => (n % 4 === 3 ? `s3:${require('node:crypto').createHash('sha256').update(p.body).digest('hex')}` : String(n)));
    expect(order('line:alice')).toEqual(expected(0));
    expect(order('line:bob')).toEqual(expected(1));
    for (const m of messages) expect(m.Attributes?.MessageDeduplicationId).toBe(m.MessageAttributes?.bodySha256?.StringValue);
  });
});

describe('SqsBatchProducer on a FIFO queue: batch limits and lanes', () => {
  const producerFor = (registry = createRegistry({ defaultMetrics: false }), maxInFlightBatches = 8) =>
    new SqsBatchProducer({
      sqs: aws.clients.sqs,
      queueUrl: aws.standIns.queueUrl,
      claimCheck: new S3ClaimCheckWriter({ s3: aws.clients.s3, bucket: aws.names.bucket }),
      batchWindowMs: 0,
      timeoutMs: 5000,
      claimCheckThresholdBytes: 900 * 1024,
      maxInFlightBatches,
      logger: capturedLogger().logger,
      registry,
    });

  it('never lets a small payload of a conversation overtake its bigger one that did not fit the 1 MiB batch', async () => {
    const producer = producerFor(createRegistry({ defaultMetrics: false }), 1);
    const payload = (n: string, kib: number, groupId: string) => ({ body: Buffer.from(JSON.stringify({ entry: [], n, pad: 'x'.repeat(kib * 1024) })), attributes: {}, routes: [{ groupId }] });
    // 10 small payloads go out at once and take the one call slot; meanwhile the next three wait together:
    // alice's 500 KiB opens the next batch, bob's 600 KiB does not fit after it, bob's 1 KiB would.
    const filler = Array.from({ length: 10 }, (_, i) => payload(`z${i}`, 0, 'line:zoe'));
    await Promise.all([...filler, payload('alice', 500, 'line:alice'), payload('bob-1', 600, 'line:bob'), payload('bob-2', 1, 'line:bob')].map((p) => producer.enqueue(p)));
    const bob = (await drainInOrder()).filter((m) => m.Attributes?.MessageGroupId === 'line:bob').map((m) => (JSON.parse(m.Body!) as { n: string }).n);
    expect(bob).toEqual(['bob-1', 'bob-2']);
  });

  it('sends a payload mixing messages and statuses twice, same bytes, one copy per lane, each with its own dedup id', async () => {
    const body = Buffer.from(JSON.stringify({ entry: [], mixed: true }));
    const routes = [
      { groupId: '1:555', lane: 'conversation' as const },
      { groupId: '1:555:status', lane: 'statuses' as const },
    ];
    await producerFor().enqueue({ body, attributes: {}, routes });
    const messages = await drainInOrder();
    expect(messages.map((m) => [m.Attributes?.MessageGroupId, m.MessageAttributes?.lane?.StringValue, m.Body])).toEqual([
      ['1:555', 'conversation', body.toString()],
      ['1:555:status', 'statuses', body.toString()],
    ]);
    const sha = messages[0]!.MessageAttributes!.bodySha256!.StringValue!;
    expect(messages.map((m) => m.Attributes?.MessageDeduplicationId)).toEqual([sha, `${sha}:statuses`]);
  });

  it('claim-checks an oversize split payload once and sends the pointer to both lanes', async () => {
    const registry = createRegistry({ defaultMetrics: false });
    const body = Buffer.from(JSON.stringify({ entry: [], pad: 'y'.repeat(950 * 1024) }));
    await producerFor(registry).enqueue({ body, attributes: {}, routes: [{ groupId: '1:7', lane: 'conversation' }, { groupId: '1:7:status', lane: 'statuses' }] });
    const messages = await drainInOrder();
    expect(messages).toHaveLength(2);
    expect(new Set(messages.map((m) => m.MessageAttributes?.claimCheck?.StringValue)).size).toBe(1);
    expect(messages.every((m) => m.MessageAttributes?.claimCheck?.StringValue?.startsWith('s3://'))).toBe(true);
    expect((await registry.getSingleMetric('wa_ingress_claim_checks_total')!.get()).values[0]!.value).toBe(1);
  });
});

describe('DuplicateWindow', () => {
  it('counts a payload accepted again within 5 minutes, noting whether SQS returned the first MessageId', async () => {
    let now = 0;
    const registry = createRegistry({ defaultMetrics: false });
    const window = new DuplicateWindow(registry, { now: () => now, maxEntries: 2 });
    expect(window.accepted('a', 'm1')).toBe(false);
    now += 1000;
    expect(window.accepted('a', 'm1')).toBe(true);
    expect(window.accepted('a', 'other')).toBe(true);
    now += 5 * 60_000;
    expect(window.accepted('a', 'm2')).toBe(false); // past SQS's window: a real new send
    // Bounded: the oldest entries go first.
    window.accepted('b', 'm3');
    window.accepted('c', 'm4');
    expect(window.accepted('a', 'm2')).toBe(false);
    const values = (await registry.getSingleMetric('wa_ingress_fifo_duplicates_total')!.get()).values;
    expect(values.map((v) => [v.labels.same_message_id, v.value]).sort()).toEqual([
      ['false', 1],
      ['true', 1],
    ]);
  });
});
