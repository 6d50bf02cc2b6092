import { spawn, type ChildProcess } from 'node:child_process';
import { GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { STANDIN_CREDENTIALS } from '../../src/config/embedded-state';
import { sign } from '../../src/ingress/signature';
import { startBirdStandIn, type BirdStandIn } from '../../src/local/bird-standin';
import { startGraphStandIn, type GraphStandIn } from '../../src/local/graph-standin';
import { embeddedDefaultEnv, freePort, MAIN_JS, waitFor } from '../support/child';
import { APP_SECRET } from '../support/ingress';
import { capturedLogger } from '../support/logs';
import { GRAPH_TOKEN, LINES, lineFor, textMessage, webhookPayload } from '../support/worker';

/**
 * `npm start` as a one-machine deployment: `node dist/main.js all` on a fresh DATA_DIR, killed with
 * SIGKILL as a whole process group (the gateway and its queue process) while it holds acknowledged
 * messages, accepted replies, a parked message and a buffered turn; then started again on the same
 * DATA_DIR. Bird and Graph stand-ins run here, outside the killed group, so they see every attempt:
 * Bird takes 10 messages then holds every request; Graph is down until the restart.
 */
const DIST = resolve(__dirname, '../../dist');
const CONTACTS = 8;
const MESSAGES = 40;
const REPLIES = 20;
const BIRD_ACCEPTS_BEFORE_KILL = 10;
const OUTBOUND_KEY = 'one-machine-outbound-key-0123456789';
const TURN_QUIET_MS = 10_000;
/** The default visibility timeout (30 s) and lease bound how long a message in flight at the kill waits. */
const RECOVERY_BOUND_MS = 75_000;

interface Gateway {
  process: ChildProcess;
  output(): string;
  exited: Promise<unknown>;
}

/** `node dist/main.js all` as the leader of its own process group, so a kill reaches the queue process too. */
function startGateway(env: NodeJS.ProcessEnv): Gateway {
  if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run \`npm run build\` (npm test does)`);
  const child = spawn(process.execPath, [MAIN_JS, 'all'], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  return { process: child, output: () => output, exited: new Promise((done) => child.on('exit', done)) };
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

function runCli(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [join(DIST, script), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stdout += c.toString()));
    child.on('exit', (code) => done({ code, stdout }));
  });
}

const contactOf = (i: number) => `1650555${String(1000 + (i % CONTACTS))}`;
const wamidOf = (i: number) => `wamid.one-machine-${i}`;
const TURN_WAMID = 'wamid.one-machine-turn';
const PARKED_WAMID = 'wamid.one-machine-parked';

let dataDir: string;
let env: NodeJS.ProcessEnv;
let bird: BirdStandIn;
let graph: GraphStandIn;
let graphPort: number;
let gateway: Gateway;
let replyIds: string[] = [];
let restartedAt = 0;

async function post(body: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${env.PORT}/webhooks/whatsapp`, { method: 'POST', body, headers: { 'x-hub-signature-256': sign(APP_SECRET, body) } });
  await res.arrayBuffer();
  return res.status;
}

const messageFrom = (contact: string, wamid: string) => ({ ...textMessage(wamid), from: contact });
const keysAtBird = () => new Set(bird.received().map((c) => c.idempotencyKey));
const ready = async () => existsSync(join(dataDir, 'embedded.json')) && (await fetch(`http://127.0.0.1:${env.PORT}/readyz`)).ok;
/** Messages on the turn timer queue (a timer is a delayed message there). */
async function timersQueued(): Promise<number> {
  const { endpoints } = JSON.parse(readFileSync(join(dataDir, 'embedded.json'), 'utf8')) as { endpoints: { sqs: string } };
  const sqs = new SQSClient({ region: 'us-east-1', endpoint: endpoints.sqs, credentials: STANDIN_CREDENTIALS });
  try {
    const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: `${endpoints.sqs}/000000000000/wa-ingress-turns`, AttributeNames: ['All'] }));
    return (['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesDelayed', 'ApproximateNumberOfMessagesNotVisible'] as const).reduce((n, name) => n + Number(Attributes?.[name] ?? 0), 0);
  } finally {
    sqs.destroy();
  }
}
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'wa-ingress-one-machine-'));
  bird = await startBirdStandIn({ logger: capturedLogger('warn').logger });
  graphPort = await freePort();
  const linesFile = join(dataDir, 'lines.json');
  writeFileSync(
    linesFile,
    JSON.stringify([
      { ...lineFor('doc', bird.flowUrl()), outboundKeys: [OUTBOUND_KEY] },
      { ...lineFor('pywa', bird.flowUrl()), turn: { quietMs: TURN_QUIET_MS, maxWaitMs: 20_000, maxMessages: 10 } },
    ]),
  );
  env = await embeddedDefaultEnv(dataDir, {
    LOG_LEVEL: 'warn',
    LINES_FILE: linesFile,
    WHATSAPP_APP_SECRETS: APP_SECRET,
    WHATSAPP_ACCESS_TOKEN: GRAPH_TOKEN,
    GRAPH_API_BASE_URL: `http://127.0.0.1:${graphPort}`,
    WORKER_CONCURRENCY: '4',
  });


  bird.failNext(BIRD_ACCEPTS_BEFORE_KILL, {}); // answered normally…
  bird.failAlways({ delayMs: 300_000 }); // …then every request hangs until its client goes away
  gateway = startGateway(env);
  await waitFor(ready, 30_000, 'the embedded gateway').catch((error: Error) => {
    throw new Error(`${error.message}\n${gateway.output().slice(-3000)}`);
  });

  // First what needs a free worker slot (Bird will hold every slot later): a message no line has
  // yet, which the worker parks as unrouted, and the first message of a turn, buffered with a timer.
  expect(await post(webhookPayload([{ changes: [{ phoneNumberId: LINES.third.phoneNumberId, messages: [textMessage(PARKED_WAMID)] }] }]))).toBe(200);
  await waitFor(async () => (await runCli('cli/dlq.js', ['list'], env)).stdout.includes('unrouted'), 20_000, 'the parked message');
  const turnPostedAt = Date.now();
  expect(await post(webhookPayload([{ changes: [{ phoneNumberId: LINES.pywa.phoneNumberId, messages: [textMessage(TURN_WAMID)] }] }]))).toBe(200);
  await waitFor(async () => (await timersQueued()) > 0, 5_000, 'the turn timer');

  const statuses = await Promise.all(
    Array.from({ length: MESSAGES }, (_, i) => post(webhookPayload([{ changes: [{ phoneNumberId: LINES.doc.phoneNumberId, messages: [messageFrom(contactOf(i), wamidOf(i))] }] }]))),
  );
  expect(statuses).toEqual(Array.from({ length: MESSAGES }, () => 200));
  replyIds = await Promise.all(
    Array.from({ length: REPLIES }, async (_, i) => {
      const res = await fetch(`http://127.0.0.1:${env.PORT}/v1/lines/${LINES.doc.lineId}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${OUTBOUND_KEY}`, 'idempotency-key': `one-machine-${i}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: contactOf(i), type: 'text', text: { body: `reply ${i}` } }),
      });
      expect(res.status).toBe(202);
      return ((await res.json()) as { id: string }).id;
    }),
  );
  await waitFor(async () => bird.received().length >= BIRD_ACCEPTS_BEFORE_KILL, 20_000, 'Bird to take the first messages');
  await sleep(300);
  process.kill(-gateway.process.pid!, 'SIGKILL');
  await gateway.exited;
  await waitFor(async () => !groupAlive(gateway.process.pid!), 5_000, 'the whole process group to die');
  // What the restart must recover: the turn was not yet due, and Bird had not taken every message.
  expect(Date.now()).toBeLessThan(turnPostedAt + TURN_QUIET_MS);
  expect(bird.received().some((c) => c.body.kind === 'turn')).toBe(false);
  expect(keysAtBird().size).toBeLessThan(MESSAGES);

  bird.recover();
  graph = await startGraphStandIn({ port: graphPort, token: GRAPH_TOKEN });
  restartedAt = Date.now();
  gateway = startGateway(env);
  await waitFor(ready, 30_000, 'the restarted gateway');
}, 120_000);

afterAll(async () => {
  if (gateway?.process.pid && groupAlive(gateway.process.pid)) {
    process.kill(-gateway.process.pid, 'SIGTERM');
    await gateway.exited;
  }
  await graph?.stop();
  await bird?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('npm start killed with SIGKILL (whole process group), then restarted on the same DATA_DIR', () => {
  it('every acknowledged message reaches Bird, none under two Idempotency-Keys', async () => {
    const expected = Array.from({ length: MESSAGES }, (_, i) => `msg#${LINES.doc.phoneNumberId}#${wamidOf(i)}`);
    await waitFor(async () => expected.every((key) => keysAtBird().has(key)), RECOVERY_BOUND_MS, 'every acknowledged message at Bird').catch((error: Error) => {
      throw new Error(`${error.message}: missing ${expected.filter((k) => !keysAtBird().has(k)).join(', ')}\n${gateway.output().slice(-3000)}`);
    });
    process.stdout.write(`one machine, kill -9: all ${MESSAGES} acknowledged messages at Bird ${seconds(Date.now() - restartedAt)} after the restart\n`);
    const wamidsByKey = new Map<string, Set<string>>();
    for (const call of bird.received()) {
      const wamid = (call.body.message as { id?: string } | undefined)?.id;
      if (!wamid) continue;
      wamidsByKey.set(wamid, (wamidsByKey.get(wamid) ?? new Set()).add(call.idempotencyKey));
    }
    expect([...wamidsByKey.entries()].filter(([, keys]) => keys.size !== 1)).toEqual([]);
  }, RECOVERY_BOUND_MS + 5_000);

  it('each reply accepted by the send API is sent to Graph exactly once', async () => {
    const sentIds = () => graph.messages.sends().map((s) => s.callbackData);
    await waitFor(async () => replyIds.every((id) => sentIds().includes(id)), RECOVERY_BOUND_MS, 'every accepted reply at Graph');
    process.stdout.write(`one machine, kill -9: all ${REPLIES} accepted replies sent ${seconds(Date.now() - restartedAt)} after the restart\n`);
    await sleep(2_000); // room for a second send, were there one
    const counts = new Map<string, number>();
    for (const id of sentIds()) if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
    expect(replyIds.map((id) => counts.get(id))).toEqual(replyIds.map(() => 1));
  }, RECOVERY_BOUND_MS + 5_000);

  it('a turn buffered before the kill reaches Bird after the restart, with no new message', async () => {
    const turnAtBird = () => bird.received().find((c) => c.body.kind === 'turn' && JSON.stringify(c.body).includes(TURN_WAMID));
    await waitFor(async () => turnAtBird() !== undefined, RECOVERY_BOUND_MS, 'the buffered turn at Bird');
    process.stdout.write(`one machine, kill -9: the buffered turn at Bird ${seconds(Date.now() - restartedAt)} after the restart\n`);
    expect((turnAtBird()!.body.turn as { messages: unknown[] }).messages).toHaveLength(1);
  }, RECOVERY_BOUND_MS + 5_000);

  it('a parked message is still in the DLQ, and is redriven once its line exists', async () => {
    const listed = await runCli('cli/dlq.js', ['list'], env);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('unrouted');
    const lineFile = join(dataDir, 'third.json');
    writeFileSync(lineFile, JSON.stringify(lineFor('third', bird.flowUrl())));
    expect((await runCli('cli/lines.js', ['put', lineFile], env)).code).toBe(0);
    const redriven = await runCli('cli/dlq.js', ['redrive', '--all'], env);
    expect(redriven.code).toBe(0);
    const key = `msg#${LINES.third.phoneNumberId}#${PARKED_WAMID}`;
    await waitFor(async () => keysAtBird().has(key), 30_000, 'the redriven message at Bird').catch((error: Error) => {
      throw new Error(`${error.message}\n${redriven.stdout}\n${gateway.output().slice(-3000)}`);
    });
    expect((await runCli('cli/dlq.js', ['list'], env)).stdout).not.toContain('unrouted');
  }, 60_000);
});
