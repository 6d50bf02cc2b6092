/**
 * SIGKILL recovery: how long acknowledged events wait for Bird after `node dist/main.js all` is
 * killed under load and started again.
 *
 * The stand-ins (local-aws-sqs, dynalite, s3rver, Bird) run in this process; the gateway runs as a
 * child with the production-like environment and every worker default (visibility timeout, lease,
 * backoff) untouched. 60 text events (12 signed payloads of 5) are POSTed and acknowledged (200);
 * Bird answers slowly (400 ms per event), so the worker is mid-work when it gets SIGKILL after a
 * third of the events reached Bird. The gateway is started again at once, Bird recovers, and every
 * event's first arrival is timed from the restart.
 *
 * Run: `npm run bench:crash`.
 * Env: CRASH_OBSERVE_SECONDS (130): how long to watch after the restart;
 * SQS_VISIBILITY_TIMEOUT_SECONDS: passed on to the gateway (unset = its default).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAwsClients } from '../src/aws/clients';
import { ensureResources } from '../src/aws/resources';
import { sign } from '../src/ingress/signature';
import { parseLines, upsertLines } from '../src/lines/admin';
import { DynamoLineStore } from '../src/lines/store';
import { standInEnvironment, startAwsStandIns } from '../src/local/aws-standins';
import { BIRD_STANDIN_FLOW_SECRET, BIRD_STANDIN_FLOW_SIGNING_SECRET, startBirdStandIn } from '../src/local/bird-standin';
import { createLogger } from '../src/observability/logger';
import { messagesWebhook } from './worker-payloads';

const PAYLOADS = 12;
const EVENTS_PER_PAYLOAD = 5;
const KILL_AFTER_ACCEPTED = 20;
const OBSERVE_MS = Number(process.env.CRASH_OBSERVE_SECONDS ?? 130) * 1000;
const APP_SECRET = 'crash-bench-app-secret';
const NAMES = { linesTable: 'wa-ingress-lines', dedupeTable: 'wa-ingress-dedupe', contactsTable: 'wa-ingress-contacts', outboundTable: 'wa-ingress-outbound', bucket: 'wa-ingress-crash' };
const PHONE_NUMBER_ID = '106540352242922';
const MAIN_JS = resolve(__dirname, '../../dist/main.js');

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await Promise.resolve(check()).catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function payload(p: number): string {
  const messages = Array.from({ length: EVENTS_PER_PAYLOAD }, (_, m) => ({
    from: '16505551234',
    id: `wamid.crash-bench-${p}-${m}`,
    timestamp: '1749416383',
    type: 'text',
    text: { body: `event ${p}-${m}` },
  }));
  return messagesWebhook({ wabaId: '102290129340398', displayPhoneNumber: '15550783881', phoneNumberId: PHONE_NUMBER_ID }, '16505551234', 'Crash Bench', messages);
}

async function main(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const quiet = createLogger({ level: 'silent' });
  const standIns = await startAwsStandIns({});
  const clients = createAwsClients({ region: 'us-east-1', endpoints: standIns.endpoints, forcePathStyle: true, credentials: standIns.credentials });
  await ensureResources(clients, NAMES);
  const bird = await startBirdStandIn({ logger: quiet });
  const store = new DynamoLineStore({ documents: clients.documents, tableName: NAMES.linesTable });
  await upsertLines(
    store,
    parseLines(
      [{ lineId: 'crash', phoneNumberId: PHONE_NUMBER_ID, wabaId: '102290129340398', displayPhoneNumber: '15550783881', bird: { transport: 'flow', flowUrl: bird.flowUrl(), flowSecret: BIRD_STANDIN_FLOW_SECRET, flowSigningSecret: BIRD_STANDIN_FLOW_SIGNING_SECRET } }],
      { production: false },
    ),
  );

  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    PORT: String(port),
    ...standInEnvironment(standIns),
    S3_BUCKET: NAMES.bucket,
    DYNAMODB_LINES_TABLE: NAMES.linesTable,
    DYNAMODB_DEDUPE_TABLE: NAMES.dedupeTable,
    WHATSAPP_VERIFY_TOKEN: 'crash-bench-verify',
    WHATSAPP_APP_SECRETS: APP_SECRET,
    // local-aws-sqs answers a long poll only when its wait ends: as the embedded default does.
    SQS_WAIT_TIME_SECONDS: '1',
    ...(process.env.SQS_VISIBILITY_TIMEOUT_SECONDS ? { SQS_VISIBILITY_TIMEOUT_SECONDS: process.env.SQS_VISIBILITY_TIMEOUT_SECONDS } : {}),
  };
  const children: ChildProcess[] = [];
  const startGateway = async (): Promise<ChildProcess> => {
    const child = spawn(process.execPath, [MAIN_JS, 'all'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(child);
    await until(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, 30_000, 'the gateway to be ready');
    return child;
  };

  try {
    bird.failAlways({ delayMs: 400 }); // slow, not failing: the worker is mid-work when it dies
    const first = await startGateway();
    const bodies = Array.from({ length: PAYLOADS }, (_, p) => payload(p));
    const statuses = await Promise.all(
      bodies.map(async (body) => {
        const res = await fetch(`http://127.0.0.1:${port}/webhooks/whatsapp`, { method: 'POST', body, headers: { 'x-hub-signature-256': sign(APP_SECRET, body) } });
        await res.arrayBuffer();
        return res.status;
      }),
    );
    const acknowledged = statuses.filter((s) => s === 200).length * EVENTS_PER_PAYLOAD;
    const keys = bodies.flatMap((_, p) => Array.from({ length: EVENTS_PER_PAYLOAD }, (__, m) => `msg#${PHONE_NUMBER_ID}#wamid.crash-bench-${p}-${m}`));

    await until(() => bird.received().length >= KILL_AFTER_ACCEPTED, 60_000, 'the first events at Bird');
    first.kill('SIGKILL');
    await new Promise((done) => first.once('exit', done));
    const beforeKill = new Set(bird.received().map((c) => c.idempotencyKey)).size;

    bird.recover();
    const restartedAt = Date.now();
    await startGateway();
    const firstSeen = new Map<string, number>();
    for (const call of bird.received()) firstSeen.set(call.idempotencyKey, restartedAt);
    while (Date.now() - restartedAt < OBSERVE_MS && firstSeen.size < keys.length) {
      for (const call of bird.received()) if (!firstSeen.has(call.idempotencyKey)) firstSeen.set(call.idempotencyKey, Date.now());
      await sleep(100);
    }
    for (const call of bird.received()) if (!firstSeen.has(call.idempotencyKey)) firstSeen.set(call.idempotencyKey, Date.now());

    const within = (seconds: number) => keys.filter((k) => (firstSeen.get(k) ?? Infinity) - restartedAt <= seconds * 1000).length;
    const last = Math.max(...keys.map((k) => firstSeen.get(k) ?? Infinity)) - restartedAt;
    // One wamid, one Idempotency-Key: a key carried by two different events would mean a duplicate at Bird.
    const keysPerWamid = new Map<string, Set<string>>();
    for (const call of bird.received()) {
      const wamid = String((call.body.message as { id?: string } | undefined)?.id ?? call.idempotencyKey);
      keysPerWamid.set(wamid, (keysPerWamid.get(wamid) ?? new Set()).add(call.idempotencyKey));
    }
    const repeats = bird.received().filter((c) => c.duplicate).length;
    const visibility = env.SQS_VISIBILITY_TIMEOUT_SECONDS ?? 'default';
    console.log(`crash-recovery (SQS_VISIBILITY_TIMEOUT_SECONDS=${visibility})`);
    console.log(`  acknowledged events:           ${acknowledged}`);
    console.log(`  at Bird before the SIGKILL:    ${beforeKill}`);
    console.log(`  at Bird within 60 s of restart: ${within(60)}/${keys.length}`);
    console.log(`  at Bird within 120 s of restart: ${within(120)}/${keys.length}`);
    console.log(`  last event at Bird:            ${Number.isFinite(last) ? `${(last / 1000).toFixed(1)} s after restart` : `missing after ${OBSERVE_MS / 1000} s`}`);
    console.log(`  repeats at Bird (same key):    ${repeats}`);
    console.log(`  events under two keys:         ${[...keysPerWamid.values()].filter((s) => s.size > 1).length}`);
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await bird.stop();
    clients.destroy();
    await standIns.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
