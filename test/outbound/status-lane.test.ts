import { parseLines, upsertLines } from '../../src/lines/admin';
import { DynamoLineStore } from '../../src/lines/store';
import { startBirdStandIn, type BirdStandIn } from '../../src/local/bird-standin';
import { startGraphStandIn, type GraphStandIn } from '../../src/local/graph-standin';
import { sign } from '../../src/ingress/signature';
import { DynamoOutboundStore } from '../../src/outbound/dynamo-outbound-store';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { freePort, startMain, waitFor, type Child } from '../support/child';
import { APP_SECRET } from '../support/ingress';
import { capturedLogger } from '../support/logs';
import { GRAPH_TOKEN, LINES, gatewayEnv, lineFor, textMessage, webhookPayload } from '../support/worker';

/**
 * Issue 13, defect 3, through the running process (`node dist/main.js all`, FIFO inbound and
 * outbound queues on the stand-ins): a reply's statuses must settle its record while the person's
 * conversation is blocked by an inbound message Bird keeps refusing. local-aws-sqs does not hold a
 * FIFO group while a message is in flight, but the worker's SequencedHandler holds a group whose
 * message is being retried (10 s, then 20 s, …): on one group, the statuses wait behind it, the
 * sender finds no status after its grace and sends the reply again.
 */
const KEY = 'status-lane-key-0123456789';
const PERSON = '16505551234';
const GRACE_MS = 5000;
const SETTLED = ['sent', 'delivered', 'read'];

let aws: AwsHarness;
let graph: GraphStandIn;
let bird: BirdStandIn;
let child: Child;
let base: string;

beforeAll(async () => {
  aws = await startAwsHarness({ fifo: true, queueName: 'status-lane' });
  bird = await startBirdStandIn({ logger: capturedLogger('warn').logger });
  graph = await startGraphStandIn({ token: GRAPH_TOKEN });
  const lines = new DynamoLineStore({ documents: aws.clients.documents, tableName: aws.names.linesTable });
  await upsertLines(lines, parseLines([{ ...lineFor('doc', bird.flowUrl()), outboundKeys: [KEY] }], { production: false }));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = startMain(
    'all',
    gatewayEnv(aws, { port, graph }, { OUTBOUND_UNCERTAIN_GRACE_MS: String(GRACE_MS) }),
  );
  await waitFor(async () => (await fetch(`${base}/readyz`)).ok, 20_000, 'the gateway').catch((error: Error) => {
    throw new Error(`${error.message}; output:\n${child.output().slice(-3000)}`);
  });
  // Meta's statuses come back to the process's own webhook endpoint, signed.
  graph.messages.setWebhookTarget(`${base}/webhooks/whatsapp`, APP_SECRET);
}, 60_000);

afterAll(async () => {
  if (child && child.process.exitCode === null && child.process.signalCode === null) {
    child.process.kill('SIGTERM');
    await child.exited;
  }
  await graph?.stop();
  await bird?.stop();
  await aws?.stop();
});

describe('a reply whose response was lost, while the person has a message stuck at Bird', () => {
  it('is settled by its statuses within seconds, and Graph sees exactly 1 POST for it; the statuses and the message then reach Bird once each', async () => {
    // The person's message: Bird answers 503 until told otherwise, so the worker retries it (10 s, 20 s, …) and holds its group.
    bird.failAlways({ status: 503 });
    const inbound = webhookPayload([{ changes: [{ phoneNumberId: LINES.doc.phoneNumberId, messages: [textMessage('wamid.lane-stuck', 'are you there?')] }] }]);
    const posted = await fetch(`${base}/webhooks/whatsapp`, { method: 'POST', body: inbound, headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(APP_SECRET, inbound) } });
    expect(posted.status).toBe(200);
    await waitFor(async () => bird.attempts().some((a) => a.status === 503), 15_000, 'the message refused by Bird');

    // The reply to that person: Meta accepts it, the answer is lost (the sender marks it uncertain), the statuses come.
    graph.messages.loseNextResponses(1, { statuses: true });
    const accepted = await fetch(`${base}/v1/lines/${LINES.doc.lineId}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'idempotency-key': 'lane-reply-1', 'content-type': 'application/json' },
      body: JSON.stringify({ to: PERSON, type: 'text', text: { body: 'yes, here' } }),
    });
    expect(accepted.status).toBe(202);
    const { id } = (await accepted.json()) as { id: string };
    const postsOf = () => graph.messages.sends().filter((s) => s.callbackData === id);
    await waitFor(async () => postsOf().length >= 1, 15_000, 'the reply at Graph');
    const lost = postsOf()[0]!;
    expect(lost.outcome).toBe('lost');

    const store = new DynamoOutboundStore({ documents: aws.clients.documents, tableName: aws.names.outboundTable, retentionDays: 14 });
    await waitFor(async () => SETTLED.includes((await store.get(id))?.status ?? ''), 20_000, 'the record settled').catch((error: Error) => {
      throw new Error(`${error.message}; output:\n${child.output().slice(-3000)}`);
    });
    const settleMs = Date.now() - lost.at;
    console.log(`[status-lane] record settled ${settleMs} ms after Graph accepted the reply, while the conversation was blocked (grace ${GRACE_MS} ms); Graph POSTs so far: ${postsOf().length}`);
    // Settled by a status, not by a resend's answer; and while Bird has taken nothing yet (the conversation's message is being retried).
    expect(postsOf().map((s) => s.outcome)).toEqual(['lost']);
    expect(bird.received()).toEqual([]);
    expect(settleMs).toBeLessThan(GRACE_MS);

    // Past the grace and the job's return: a sender without a status would have sent it again by now.
    await new Promise((r) => setTimeout(r, GRACE_MS + 4000));
    expect(postsOf().map((s) => s.outcome)).toEqual(['lost']);
    expect(SETTLED).toContain((await store.get(id))?.status);

    // Bird back: the message and the reply's three statuses reach it, each once.
    bird.recover();
    const keys = () => bird.received().map((c) => c.idempotencyKey);
    const wanted = [`msg#${LINES.doc.phoneNumberId}#wamid.lane-stuck`, ...SETTLED.map((s) => `status#${lost.wamid}#${s}`)];
    await waitFor(async () => wanted.every((k) => keys().includes(k)), 45_000, 'the message and the statuses at Bird');
    await new Promise((r) => setTimeout(r, 1000));
    expect(keys().filter((k) => wanted.includes(k)).sort()).toEqual([...wanted].sort());
    expect(bird.received().filter((c) => c.duplicate)).toEqual([]);
  }, 120_000);
});
