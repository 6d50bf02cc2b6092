import { startGraphStandIn, type GraphStandIn } from '../../src/local/graph-standin';
import { startBirdStandIn, type BirdStandIn } from '../../src/local/bird-standin';
import { parseLines, upsertLines } from '../../src/lines/admin';
import { DynamoLineStore } from '../../src/lines/store';
import { DynamoOutboundStore } from '../../src/outbound/dynamo-outbound-store';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { freePort, startMain, waitFor, type Child } from '../support/child';
import { APP_SECRET } from '../support/ingress';
import { capturedLogger } from '../support/logs';
import { GRAPH_TOKEN, LINES, gatewayEnv, lineFor } from '../support/worker';

/**
 * Issue 13, "at most one duplicate", through the built process (`node dist/main.js all`, FIFO
 * inbound and outbound queues): Graph drops the connection on every send to one recipient without
 * taking it. With the grace at 5 s, Graph sees at most 2 POSTs for that reply over 2 minutes, and
 * the reply ends uncertain in its record and in the outbound DLQ (send_uncertain).
 */
const KEY = 'uncertain-process-key-0123456789';
const DROPPED = '16505550777';
const HEALTHY = '16505550778';
const OBSERVE_MS = 120_000;

let aws: AwsHarness;
let graph: GraphStandIn;
let bird: BirdStandIn;
let gateway: Child | undefined;
let port: number;

beforeAll(async () => {
  aws = await startAwsHarness({ fifo: true, queueName: 'uncertain' });
  bird = await startBirdStandIn({ logger: capturedLogger('warn').logger });
  graph = await startGraphStandIn({ token: GRAPH_TOKEN });
  await upsertLines(new DynamoLineStore({ documents: aws.clients.documents, tableName: aws.names.linesTable }), parseLines([{ ...lineFor('doc', bird.flowUrl()), outboundKeys: [KEY] }], { production: false }));
  port = await freePort();
  // Meta's statuses (of the healthy recipient) come back through the gateway's own webhook.
  graph.messages.setWebhookTarget(`http://127.0.0.1:${port}/webhooks/whatsapp`, APP_SECRET);
  graph.messages.dropConnectionsTo(DROPPED);
  gateway = startMain(
    'all',
    gatewayEnv(aws, { port, graph }, { OUTBOUND_UNCERTAIN_GRACE_MS: '5000', OUTBOUND_SEND_TIMEOUT_MS: '2000' }),
  );
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, 20_000, 'the gateway').catch((error: Error) => {
    throw new Error(`${error.message}; output:\n${gateway!.output().slice(-3000)}`);
  });
}, 60_000);

afterAll(async () => {
  if (gateway && gateway.process.exitCode === null && gateway.process.signalCode === null) {
    gateway.process.kill('SIGTERM');
    await gateway.exited;
  }
  await graph.stop();
  await bird.stop();
  await aws.stop();
});

async function reply(to: string, key: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/lines/${LINES.doc.lineId}/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify({ to, type: 'text', text: { body: 'are you still there?' } }),
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

describe('a recipient whose every send drops its connection (node dist/main.js all)', () => {
  it('Graph sees at most 2 POSTs over 2 minutes; the reply ends uncertain in its record and in the outbound DLQ (send_uncertain)', async () => {
    const started = Date.now();
    const id = await reply(DROPPED, 'dropped-1');
    const healthy = await reply(HEALTHY, 'healthy-1');
    const store = new DynamoOutboundStore({ documents: aws.clients.documents, tableName: aws.names.outboundTable, retentionDays: 14 });
    const posts = () => graph.messages.sends().filter((s) => s.callbackData === id);
    await waitFor(async () => (await store.get(healthy))?.status === 'read', 15_000, 'the other recipient served');

    const seen: number[] = [];
    while (Date.now() - started < OBSERVE_MS) {
      seen.push(posts().length);
      await new Promise((r) => setTimeout(r, 5000));
    }
    const atGraph = posts();
    const firstToSecondMs = atGraph.length === 2 ? atGraph[1]!.at - atGraph[0]!.at : undefined;
    console.log(`uncertain-process: ${atGraph.length} POSTs in ${Math.round((Date.now() - started) / 1000)} s (counts every 5 s: ${seen.join(',')}), resend ${firstToSecondMs} ms after the first`);
    expect(atGraph.map((s) => s.outcome)).toEqual(['dropped', 'dropped']);
    expect(firstToSecondMs).toBeGreaterThanOrEqual(5000);

    const record = (await store.get(id))!;
    expect(record).toMatchObject({ status: 'uncertain', attempts: 2, ambiguousSends: 2 });
    expect(record.retryAt).toBeUndefined();
    const view = (await (await fetch(`http://127.0.0.1:${port}/v1/lines/${LINES.doc.lineId}/messages/${id}`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { status: string };
    expect(view.status).toBe('uncertain');
    const parked = await aws.drainQueue(aws.standIns.outboundDlqUrl);
    expect(parked.map((m) => [m.MessageAttributes?.reason?.StringValue, m.MessageAttributes?.eventKey?.StringValue])).toEqual([['send_uncertain', id]]);
    expect(graph.messages.sends().filter((s) => s.callbackData === healthy).map((s) => s.outcome)).toEqual(['accepted']);
    expect(gateway!.output()).not.toContain(DROPPED);
  }, OBSERVE_MS + 40_000);
});
