import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { startGraphStandIn, type GraphStandIn } from '../../src/local/graph-standin';
import { startBirdStandIn, type BirdStandIn } from '../../src/local/bird-standin';
import { DynamoOutboundStore } from '../../src/outbound/dynamo-outbound-store';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { freePort, productionLikeEnv, startMain, waitFor, type Child } from '../support/child';
import { APP_SECRET, startIngressHarness, type IngressHarness } from '../support/ingress';
import { capturedLogger } from '../support/logs';
import { GRAPH_TOKEN, LINES, lineFor, outboundEnv } from '../support/worker';

const REPLIES = 100;
const RECIPIENTS = 10;
const KEY = 'crash-test-key-0123456789';
/** Graph takes this long per send: the kill lands with sends in flight. */
const GRAPH_LATENCY_MS = 40;
const KILL_AFTER_SENDS = 30;

let aws: AwsHarness;
let graph: GraphStandIn;
let bird: BirdStandIn;
let ingress: IngressHarness;
const children: Child[] = [];

beforeAll(async () => {
  aws = await startAwsHarness();
  bird = await startBirdStandIn({ logger: capturedLogger('warn').logger });
  graph = await startGraphStandIn({ token: GRAPH_TOKEN });
  ingress = await startIngressHarness(aws, { outbound: true });
  await ingress.putLines([{ ...lineFor('doc', bird.flowUrl()), outboundKeys: [KEY] }]);
  // Meta's statuses come back through the real webhook path to the worker's pipeline.
  graph.messages.setWebhookTarget(`${ingress.url}/webhooks/whatsapp`, APP_SECRET);
  graph.messages.setLatency(GRAPH_LATENCY_MS);
});

afterAll(async () => {
  for (const child of children) if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
  await ingress.stop();
  await graph.stop();
  await bird.stop();
  await aws.stop();
});

async function startWorkerChild(): Promise<Child> {
  const env = productionLikeEnv(aws, {
    ...outboundEnv(aws),
    PORT: String(await freePort()),
    GRAPH_API_BASE_URL: graph.baseUrl,
    MEDIA_ALLOWED_HOSTS: graph.host,
    SQS_WAIT_TIME_SECONDS: '0',
    SQS_VISIBILITY_TIMEOUT_SECONDS: '5',
    OUTBOUND_UNCERTAIN_GRACE_MS: '3000',
    OUTBOUND_CONCURRENCY: '16',
    WORKER_CONCURRENCY: '8',
    SHUTDOWN_TIMEOUT_MS: '3000',
  });
  const child = startMain('worker', env);
  children.push(child);
  return child;
}

describe('sender process killed with SIGKILL mid-stream', () => {
  it('after a restart each accepted reply was sent exactly once (counted at Graph by biz_opaque_callback_data)', async () => {
    const ids = await Promise.all(
      Array.from({ length: REPLIES }, async (_, i) => {
        const res = await fetch(`${ingress.url}/v1/lines/${LINES.doc.lineId}/messages`, {
          method: 'POST',
          headers: { authorization: `Bearer ${KEY}`, 'idempotency-key': `crash-${i}`, 'content-type': 'application/json' },
          body: JSON.stringify({ to: `1650555030${i % RECIPIENTS}`, type: 'text', text: { body: `reply ${i}` } }),
        });
        expect(res.status).toBe(202);
        return ((await res.json()) as { id: string }).id;
      }),
    );

    const first = await startWorkerChild();
    // Kill once enough went out and some are claimed right now (between receives none may be).
    const claimedNow = async () =>
      ((await aws.clients.documents.send(new ScanCommand({ TableName: aws.names.outboundTable, FilterExpression: '#s = :sending', ExpressionAttributeNames: { '#s': 'status' }, ExpressionAttributeValues: { ':sending': 'sending' } }))).Items ?? []).length;
    await waitFor(async () => graph.messages.sends().length >= KILL_AFTER_SENDS && (await claimedNow()) > 0, 30_000, `${KILL_AFTER_SENDS} sends`).catch((error: Error) => {
      throw new Error(`${error.message}; worker output:\n${first.output().slice(-3000)}`);
    });
    const killAt = Date.now();
    first.process.kill('SIGKILL');
    await first.exited;
    const atKill = graph.messages.sends().length;
    expect(atKill).toBeLessThan(REPLIES);
    // The kill caught sends in the middle: claimed, perhaps at Graph, not recorded as sent.
    const store = new DynamoOutboundStore({ documents: aws.clients.documents, tableName: aws.names.outboundTable, retentionDays: 1 });
    const claimedAtKill = (await Promise.all(ids.map((id) => store.get(id)))).filter((r) => r?.status === 'sending').length;
    expect(claimedAtKill).toBeGreaterThan(0);

    const second = await startWorkerChild();
    const reached = () => new Set(graph.messages.sends().filter((s) => s.outcome !== 'error').map((s) => s.callbackData));
    await waitFor(async () => ids.every((id) => reached().has(id)), 60_000, 'every reply at Graph');
    // Let anything still in flight (a lapsed claim, a retry) play out before counting.
    await waitFor(async () => (await Promise.all(ids.map((id) => store.get(id)))).every((r) => r && ['sent', 'delivered', 'read'].includes(r.status)), 30_000, 'every record sent');
    await new Promise((r) => setTimeout(r, 6000));

    const counts = new Map<string, number>();
    for (const send of graph.messages.sends()) if (send.outcome !== 'error') counts.set(send.callbackData!, (counts.get(send.callbackData!) ?? 0) + 1);
    const wrong = ids.filter((id) => counts.get(id) !== 1);
    if (wrong.length > 0) {
      const detail = await Promise.all(wrong.map(async (id) => ({ id, killAt, sends: graph.messages.sends().filter((x) => x.callbackData === id).map((x) => [x.outcome, x.at]), journey: (await store.get(id))?.journey })));
      console.log(JSON.stringify(detail, null, 1));
    }
    expect(wrong).toEqual([]);
    expect(counts.size).toBe(REPLIES);
    second.process.kill('SIGTERM');
    await second.exited;
    expect(second.output()).not.toContain(GRAPH_TOKEN);
  }, 150_000);
});
