import { DeleteMessageBatchCommand, ReceiveMessageCommand, type Message } from '@aws-sdk/client-sqs';
import { createAwsClients, type AwsClients } from '../../src/aws/clients';
import { GatewayError } from '../../src/errors';
import { parseLines } from '../../src/lines/admin';
import type { WhatsAppEvent } from '../../src/meta/event';
import { createRegistry, type Registry } from '../../src/observability/metrics';
import { InvalidOutboundError, QueueOutboundAcceptor } from '../../src/outbound/acceptor';
import { DynamoOutboundStore } from '../../src/outbound/dynamo-outbound-store';
import { FlowReplyScheduler, replyKey } from '../../src/outbound/flow-replies';
import type { OutboundRequest } from '../../src/outbound/job';
import { decodeJob, encodeJob } from '../../src/outbound/job-message';
import { OutboundJobQueue } from '../../src/outbound/job-queue';
import { DynamoOutboxIndex } from '../../src/outbound/outbox-index';
import { OutboxSweeper, REQUEUE_DELAY_METRIC } from '../../src/outbound/outbox-sweeper';
import { OutboundFailureReporter } from '../../src/outbound/failure-reporter';
import { createBirdClient } from '../../src/bird';
import { ReferenceSecretResolver } from '../../src/lines/secrets';
import { DlqParker } from '../../src/queue/dlq';
import { outboundId } from '../../src/outbound/record';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { capturedLogger } from '../support/logs';
import { startSqsFaultProxy, type SqsFaultProxy } from '../support/sqs-fault-proxy';

/** Pending longer than this, a record is enqueued again (OUTBOUND_OUTBOX_AGE_MS). */
const AGE_MS = 60_000;
/** The sweeper's clock runs this far ahead of the records' (time passing, without waiting for it). */
let ahead = 0;
const TO = '16505551234';

let aws: AwsHarness;
let proxy: SqsFaultProxy;
let faulty: AwsClients;
let registry: Registry;
let store: DynamoOutboundStore;
let acceptor: QueueOutboundAcceptor;
let index: DynamoOutboxIndex;
let sweeper: OutboxSweeper;

beforeAll(async () => {
  aws = await startAwsHarness();
  proxy = await startSqsFaultProxy({ target: aws.standIns.endpoints.sqs, queueUrl: aws.standIns.outboundQueueUrl });
  // The acceptor's SQS calls go through the proxy, which fails its SendMessage while told to.
  faulty = createAwsClients({ region: 'us-east-1', endpoints: { ...aws.standIns.endpoints, sqs: proxy.url }, forcePathStyle: true, credentials: aws.standIns.credentials });
  registry = createRegistry({ defaultMetrics: false });
  const logger = capturedLogger('warn').logger;
  store = new DynamoOutboundStore({ documents: aws.clients.documents, tableName: aws.names.outboundTable, retentionDays: 30, registry });
  acceptor = new QueueOutboundAcceptor({ store, sqs: faulty.sqs, queueUrl: aws.standIns.outboundQueueUrl, timeoutMs: 1000, registry, logger });
  index = new DynamoOutboxIndex({ documents: aws.clients.documents, tableName: aws.names.outboundTable });
  sweeper = new OutboxSweeper({
    index,
    jobs: new OutboundJobQueue({ sqs: aws.clients.sqs, queueUrl: aws.standIns.outboundQueueUrl, timeoutMs: 3000, registry }),
    ageMs: AGE_MS,
    // Swept by hand below.
    intervalMs: 3_600_000,
    registry,
    logger,
    clock: () => Date.now() + ahead,
  });
});

afterEach(() => proxy.setFault('none'));

afterAll(async () => {
  faulty.destroy();
  await proxy.stop();
  await aws.stop();
});

/** Every job on the outbound queue now, with its FIFO attributes; deleted as read. */
async function drainOutbound(): Promise<Message[]> {
  const all: Message[] = [];
  for (;;) {
    const out = await aws.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: aws.standIns.outboundQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageSystemAttributeNames: ['All'], AttributeNames: ['All'] }),
    );
    if (!out.Messages?.length) return all;
    all.push(...out.Messages);
    await aws.clients.sqs.send(
      new DeleteMessageBatchCommand({ QueueUrl: aws.standIns.outboundQueueUrl, Entries: out.Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }),
    );
  }
}

const jobsFor = (messages: Message[], id: string) => messages.filter((m) => decodeJob(m.Body ?? '')?.id === id);
const agePast = async () => {
  ahead += AGE_MS + 1000;
};

async function requeueDelays(): Promise<{ count: number; sum: number }> {
  const values = (await registry.getSingleMetric(REQUEUE_DELAY_METRIC)?.get())?.values ?? [];
  const find = (name: string) => values.find((v) => (v as { metricName?: string }).metricName === name)?.value ?? 0;
  return { count: find(`${REQUEUE_DELAY_METRIC}_count`), sum: find(`${REQUEUE_DELAY_METRIC}_sum`) };
}

function request(key: string, text: string): OutboundRequest {
  return { lineId: 'line-a', to: TO, idempotencyKey: key, source: 'api', body: { type: 'text', text: { body: text } } };
}

describe('the outbox', () => {
  it('a reply whose enqueue failed is found through the byPending index and enqueued again as the acceptor would have', async () => {
    proxy.setFault('fail');
    const lost = request('outbox-lost', 'the reply that must not be lost');
    const refused = await acceptor.accept(lost).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(GatewayError);
    expect((refused as GatewayError).reason).toBe('outbound_unavailable');
    expect(proxy.faulted()).toBeGreaterThan(0);
    const id = outboundId(lost.lineId, lost.idempotencyKey);
    // Written, with its body, and no job anywhere.
    expect(await store.get(id)).toMatchObject({ status: 'queued', sendBody: JSON.stringify(lost.body), outboxShard: expect.stringMatching(/^p\d\d$/) });
    expect(jobsFor(await drainOutbound(), id)).toEqual([]);
    proxy.setFault('none');

    // Younger than the threshold: left alone (its acceptor may still be enqueueing).
    expect(jobsFor((await sweeper.sweep(), await drainOutbound()), id)).toEqual([]);
    const before = await requeueDelays();
    await agePast();
    const result = await sweeper.sweep();
    expect(result.requeued).toBeGreaterThanOrEqual(1);
    const [job, ...more] = jobsFor(await drainOutbound(), id);
    expect(more).toEqual([]);
    expect(job!.Body).toBe(encodeJob(id, lost));
    expect(job!.Attributes).toMatchObject({ MessageGroupId: `line-a:${TO}`, MessageDeduplicationId: id });
    const after = await requeueDelays();
    expect(after.count - before.count).toBeGreaterThanOrEqual(1);
    expect(after.sum - before.sum).toBeGreaterThanOrEqual(AGE_MS / 1000);

    // Enqueued again: not at the next sweep, only once it has been pending another threshold.
    await sweeper.sweep();
    expect(jobsFor(await drainOutbound(), id)).toEqual([]);
    await agePast();
    await sweeper.sweep();
    expect(jobsFor(await drainOutbound(), id)).toHaveLength(1);
    // Its claim takes it out of the outbox for good.
    expect((await store.claim(id, 60_000)).claimed).toBe(true);
    await agePast();
    await sweeper.sweep();
    expect(jobsFor(await drainOutbound(), id)).toEqual([]);
  });

  it('a record already claimed, sent, or taken out (its job parked) is not enqueued again', async () => {
    const ids = await Promise.all(['claimed', 'sent', 'parked'].map(async (k) => (await acceptor.accept(request(`outbox-${k}`, k))).id));
    await drainOutbound();
    const [claimed, sent, parked] = ids as [string, string, string];
    await store.claim(claimed, 60_000);
    await store.claim(sent, 60_000);
    await store.markSent({ id: sent, attempt: 1 }, 'wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA');
    await index.leave(parked);
    expect((await store.get(parked))?.status).toBe('queued');
    // The claim took them out in its own write: the sparse index does not list them at all.
    await agePast();
    const listed = (await index.pendingBefore(new Date(Date.now() + ahead).toISOString(), 1000)).map((p) => p.id);
    expect(ids.filter((id) => listed.includes(id))).toEqual([]);
    await sweeper.sweep();
    const jobs = await drainOutbound();
    expect(ids.map((id) => jobsFor(jobs, id).length)).toEqual([0, 0, 0]);
  });

  it('a job parked before any claim (unknown line) takes its record out of the outbox: only a redrive sends it', async () => {
    const accepted = await acceptor.accept(request('outbox-unrouted', 'to a line that is gone'));
    const [message] = jobsFor(await drainOutbound(), accepted.id);
    const logger = capturedLogger('warn').logger;
    const reporter = new OutboundFailureReporter({
      bird: createBirdClient({ logger, registry: createRegistry({ defaultMetrics: false }), timeoutMs: 1000, birdApiBaseUrl: 'http://127.0.0.1:9' }),
      secrets: new ReferenceSecretResolver({ production: false, cacheTtlMs: 0, env: {} }),
      parker: new DlqParker({ sqs: aws.clients.sqs, dlqUrl: aws.standIns.outboundDlqUrl, registry }),
      logger,
      outbox: index,
    });
    const job = decodeJob(message!.Body!)!;
    await reporter.park(job, { messageId: message!.MessageId!, receiveCount: 1, body: Buffer.from(message!.Body!), attributes: {}, original: { body: message!.Body!, attributes: {} } }, 'unrouted');
    expect(decodeJob((await aws.drainQueue(aws.standIns.outboundDlqUrl))[0]?.Body ?? '')?.id).toBe(accepted.id);
    expect((await store.get(accepted.id))?.status).toBe('queued');
    await agePast();
    await sweeper.sweep();
    expect(jobsFor(await drainOutbound(), accepted.id)).toEqual([]);
  });

  it('superseded path: attempt 1 answered A and its enqueue failed, attempt 2 answered B; A is what gets queued, never B', async () => {
    const [line] = parseLines(
      [{ lineId: 'line-a', phoneNumberId: '106540352242922', wabaId: 'w', displayPhoneNumber: '15550783881', bird: { transport: 'flow', flowUrl: 'https://flow.example/x', flowSecret: 's' } }],
      { production: false },
    );
    const event: WhatsAppEvent = { key: 'msg#106540352242922#wamid.SUPERSEDED', kind: 'message', field: 'messages', phoneNumberId: '106540352242922', contact: { waId: TO, userKey: TO }, message: { id: 'wamid.SUPERSEDED', type: 'text', text: 'hi' }, raw: {} };
    const scheduler = new FlowReplyScheduler({ acceptor, registry, logger: capturedLogger('warn').logger });
    const answer = (text: string) => ({ flowResponse: { status: 'accepted', replies: [{ type: 'text', text: { body: text } }] } });

    proxy.setFault('fail');
    await expect(scheduler.schedule({ line: line!, event, answer: answer('A') })).rejects.toMatchObject({ reason: 'outbound_unavailable' });
    proxy.setFault('none');
    // The retry: the key is taken with A's body, so B is superseded and the event completes.
    await scheduler.schedule({ line: line!, event, answer: answer('B') });
    const id = outboundId('line-a', replyKey(event.key, 0));
    expect(jobsFor(await drainOutbound(), id)).toEqual([]);

    await agePast();
    await sweeper.sweep();
    const jobs = jobsFor(await drainOutbound(), id).map((m) => decodeJob(m.Body!)!.body);
    expect(jobs).toEqual([{ type: 'text', text: { body: 'A' } }]);
  });

  it('a reply over 64 KB (with its recipient) is refused at accept, before any record is written', async () => {
    const big = { ...request('outbox-big', 'x'), body: { type: 'text', text: { body: 'x' }, biz_note: 'y'.repeat(64 * 1024) } };
    const error = await acceptor.accept(big).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidOutboundError);
    expect((error as InvalidOutboundError).issues).toContainEqual({ path: 'body', message: expect.stringMatching(/at most 65536/) });
    expect(await store.get(outboundId(big.lineId, big.idempotencyKey))).toBeUndefined();
  });
});
