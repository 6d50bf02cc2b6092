import { sign } from '../../src/ingress/signature';
import { parseLines, upsertLines } from '../../src/lines/admin';
import { DynamoLineStore } from '../../src/lines/store';
import { startBirdStandIn, type BirdStandIn } from '../../src/local/bird-standin';
import { startGraphStandIn, type GraphStandIn } from '../../src/local/graph-standin';
import { DynamoOutboundStore } from '../../src/outbound/dynamo-outbound-store';
import { replyKey } from '../../src/outbound/flow-replies';
import { outboundId } from '../../src/outbound/record';
import { REQUEUE_DELAY_METRIC } from '../../src/outbound/outbox-sweeper';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { freePort, startMain, waitFor, type Child } from '../support/child';
import { APP_SECRET } from '../support/ingress';
import { capturedLogger } from '../support/logs';
import { startSqsFaultProxy, type SqsFaultProxy } from '../support/sqs-fault-proxy';
import { GRAPH_TOKEN, LINES, gatewayEnv, lineFor, textMessage, webhookPayload } from '../support/worker';

/**
 * The outbox through the running process (`node dist/main.js all`, FIFO inbound and outbound), its
 * SQS calls through a fault proxy: no fault between "record written" and "job queued" orphans a reply.
 */
const SEND_API_KEY = 'outbox-process-key-0123456789';
const SENDER = '16505551234';
/** After the last send of a reply, this long with no other send counts as "exactly once". */
const SETTLE_MS = 3000;

let aws: AwsHarness;
let proxy: SqsFaultProxy;
let bird: BirdStandIn;
let graph: GraphStandIn;
let store: DynamoOutboundStore;
const children: Child[] = [];

beforeAll(async () => {
  aws = await startAwsHarness({ fifo: true });
  proxy = await startSqsFaultProxy({ target: aws.standIns.endpoints.sqs, queueUrl: aws.standIns.outboundQueueUrl });
  bird = await startBirdStandIn({ logger: capturedLogger('warn').logger });
  graph = await startGraphStandIn({ token: GRAPH_TOKEN });
  await upsertLines(
    new DynamoLineStore({ documents: aws.clients.documents, tableName: aws.names.linesTable }),
    parseLines([{ ...lineFor('doc', bird.flowUrl()), outboundKeys: [SEND_API_KEY] }], { production: false }),
  );
  store = new DynamoOutboundStore({ documents: aws.clients.documents, tableName: aws.names.outboundTable, retentionDays: 30 });
});

afterEach(() => proxy.setFault('none'));

afterAll(async () => {
  for (const child of children) if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
  await proxy.stop();
  await graph.stop();
  await bird.stop();
  await aws.stop();
});

async function startGateway(extra: Record<string, string> = {}): Promise<{ child: Child; url: string }> {
  const port = await freePort();
  const child = startMain(
    'all',
    gatewayEnv(aws, { port, graph }, {
      // Every SQS call of the process goes through the proxy.
      AWS_ENDPOINT_URL_SQS: proxy.url,
      SQS_SEND_TIMEOUT_MS: '1000',
      OUTBOUND_OUTBOX_AGE_MS: '1000',
      OUTBOUND_OUTBOX_SWEEP_MS: '250',
      ...extra,
    }),
  );
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 30_000, 'the gateway ready').catch((error: Error) => {
    throw new Error(`${error.message}; output:\n${child.output().slice(-3000)}`);
  });
  return { child, url };
}

const sendsOf = (id: string) => graph.messages.sends().filter((s) => s.callbackData === id && s.outcome !== 'error');
const textOf = (send: { body: Record<string, unknown> }) => (send.body.text as { body?: string } | undefined)?.body;

/** The process's requeue delays so far (its /metrics): count and sum in seconds. */
async function requeueDelay(url: string): Promise<{ count: number; sum: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? 0);
  return { count: value(`${REQUEUE_DELAY_METRIC}_count`), sum: value(`${REQUEUE_DELAY_METRIC}_sum`) };
}

/** SIGTERM: the sweeper stops with the sender and the poller, and the process exits cleanly. */
async function stop(child: Child): Promise<void> {
  child.process.kill('SIGTERM');
  expect(await child.exited).toEqual({ code: 0, signal: null });
}

describe('the outbox, through the running process', () => {
  it('SendMessage fails until Bird was called twice; Bird answers A, then B: the person gets A exactly once, never B', async () => {
    const { child, url } = await startGateway();
    const wamid = 'wamid.OUTBOX-AB';
    const id = outboundId(LINES.doc.lineId, replyKey(`msg#${LINES.doc.phoneNumberId}#${wamid}`, 0));
    let birdCalls = 0;
    bird.respondWith((body, call) => {
      if (body.kind !== 'message') return undefined;
      birdCalls = call.count;
      // The second call is the retry: from here SQS works again, and this answer differs.
      if (call.count >= 2) proxy.setFault('none');
      return { replies: [{ type: 'text', text: { body: call.count === 1 ? 'answer A' : 'answer B' } }] };
    });
    proxy.setFault('fail');
    const payload = webhookPayload([{ changes: [{ phoneNumberId: LINES.doc.phoneNumberId, messages: [textMessage(wamid)] }] }]);
    const res = await fetch(`${url}/webhooks/whatsapp`, { method: 'POST', body: payload, headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(APP_SECRET, payload) } });
    expect(res.status).toBe(200);

    await waitFor(async () => sendsOf(id).length > 0, 60_000, 'the reply at Graph').catch((error: Error) => {
      throw new Error(`${error.message}; output:\n${child.output().slice(-3000)}`);
    });
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const toSender = graph.messages.sends().filter((s) => s.to === SENDER && s.outcome !== 'error');
    expect(toSender.map(textOf)).toEqual(['answer A']);
    expect(sendsOf(id)).toHaveLength(1);
    // The fault did happen, and Bird was asked twice (the retry answered B, which was superseded).
    expect(proxy.faulted()).toBeGreaterThan(0);
    expect(birdCalls).toBeGreaterThanOrEqual(2);
    expect((await store.get(id))?.status).toMatch(/^(sent|delivered|read)$/);
    const delay = await requeueDelay(url);
    expect(delay.count).toBeGreaterThanOrEqual(1);
    console.log(`outbox (A/B): record written → job queued again in ${(delay.sum / delay.count).toFixed(2)} s (age threshold 1 s, sweep every 0.25 s)`);
    bird.respondWith(undefined);
    await stop(child);
  }, 90_000);

  it('SIGKILL between the record write and SendMessage, then a restart: the reply is sent exactly once', async () => {
    // SendMessage is held open, long enough for the kill to land inside it.
    const first = await startGateway({ SQS_SEND_TIMEOUT_MS: '60000' });
    proxy.setFault('hold');
    const key = 'outbox-sigkill';
    const id = outboundId(LINES.doc.lineId, key);
    const held = fetch(`${first.url}/v1/lines/${LINES.doc.lineId}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${SEND_API_KEY}`, 'idempotency-key': key, 'content-type': 'application/json' },
      body: JSON.stringify({ to: '16505550777', type: 'text', text: { body: 'sent once, whatever happens' } }),
    }).then(
      (r) => r.status,
      () => 'connection lost',
    );
    const faultedBefore = proxy.faulted();
    await waitFor(async () => (await store.get(id))?.status === 'queued' && proxy.faulted() > faultedBefore, 20_000, 'the record written and its SendMessage held');
    const killedAt = Date.now();
    first.child.process.kill('SIGKILL');
    await first.child.exited;
    // The caller never got its 202 (and never retries).
    expect(await held).toBe('connection lost');
    expect(sendsOf(id)).toEqual([]);

    proxy.setFault('none');
    const second = await startGateway();
    await waitFor(async () => sendsOf(id).length > 0, 60_000, 'the reply at Graph').catch((error: Error) => {
      throw new Error(`${error.message}; output:\n${second.child.output().slice(-3000)}`);
    });
    const sentAfterKillMs = Date.now() - killedAt;
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    expect(sendsOf(id)).toHaveLength(1);
    expect((await store.get(id))?.status).toMatch(/^(sent|delivered|read)$/);
    const delay = await requeueDelay(second.url);
    expect(delay.count).toBeGreaterThanOrEqual(1);
    console.log(`outbox (SIGKILL): record written → job queued again in ${(delay.sum / delay.count).toFixed(2)} s, incl. the restart; at Graph ${(sentAfterKillMs / 1000).toFixed(2)} s after the kill`);
    await stop(second.child);
  }, 90_000);
});
