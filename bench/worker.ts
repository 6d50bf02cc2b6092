/**
 * Worker benchmark: 5,000 text events through the real worker (startWorker: SqsPoller →
 * EventPipeline → line registry, DynamoDB dedupe, Bird flow client) on the stand-ins, against two
 * baselines measured in the same run on the same stand-ins with the same concurrency:
 *   (b) the raw SQS receive + DeleteMessageBatch of the same messages, with no processing;
 *   (c) the same events' flow POSTs to the Bird stand-in alone (bodies built and signed up front);
 *   (d) the dedupe store alone: claim + complete of each event (two UpdateItems), under other keys.
 * Then (e): the same worker on a FIFO queue (high-throughput mode) with the events spread over 100
 * contacts, i.e. 100 conversations run one message at a time each, next to (a) on the standard queue.
 * Then (f): the same FIFO run on the embedded default's durable queue (`npm start`'s queues: fauxqs
 * persisting to SQLite, in its own child process, started and created by the embedded default's own
 * options, embeddedAwsStandInOptions; the worker with the embedded default's SQS client settings, a
 * release sent as 1 s), next to (e) on the in-memory stand-in, with the ratio. Tables and Bird are
 * the same stand-ins in both, so only the queue differs. BENCH_SQS=memory skips (f).
 * The queue is loaded by the ingress's own SqsBatchProducer (SendMessageBatch, ingress attributes).
 *
 * Three processes, so each CPU figure is one process's own: the stand-ins (local-aws-sqs, dynalite,
 * s3rver, Bird) in one child, the worker in another, the loader and baselines here.
 * Run: `npm run bench:worker`. Env: BENCH_EVENTS (5000), BENCH_EVENTS_PER_PAYLOAD (`mix`, or 1..100),
 * WORKER_CONCURRENCY (32), BENCH_SQS (`memory`: no durable section), BENCH_BASELINE_DIST (another build's
 * dist: its own bench:worker, from ../dist-bench, runs right after with the same env, and the worker
 * CPU per event of both is printed side by side).
 */
import { DeleteMessageBatchCommand, GetQueueAttributesCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { ask, nextMessage, type Message } from './ipc';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAwsClients, type AwsClients } from '../src/aws/clients';
import { ensureResources } from '../src/aws/resources';
import { FLOW_SIGNATURE_HEADER, buildFlowBody, encodeFlowBody, signFlowBody } from '../src/bird';
import { loadConfig } from '../src/config/config';
import { DynamoDedupeStore } from '../src/dedupe/dynamo-dedupe-store';
import { S3ClaimCheckWriter } from '../src/queue/claim-check-writer';
import { SqsBatchProducer } from '../src/ingress/producer';
import { lineSchema, type Line } from '../src/lines/line';
import { CachedLineRegistry } from '../src/lines/registry';
import { ReferenceSecretResolver } from '../src/lines/secrets';
import { DynamoLineStore } from '../src/lines/store';
import { startAwsStandIns } from '../src/local/aws-standins';
import { embeddedAwsStandInOptions } from '../src/local/embedded';
import { embeddedAwsSettingsFor } from '../src/config/embedded-state';
import { childPidsOf, cpuSecondsOf } from './proc-cpu';
import { BIRD_STANDIN_FLOW_PATH, BIRD_STANDIN_FLOW_SECRET, BIRD_STANDIN_FLOW_SIGNING_SECRET, startBirdStandIn } from '../src/local/bird-standin';
import { envelopeToEvents } from '../src/meta/envelope';
import { conversationGroupId } from '../src/meta/conversation';
import { HIGH_THROUGHPUT_FIFO_ATTRIBUTES } from '../src/queue/fifo';
import { CreateQueueCommand } from '@aws-sdk/client-sqs';
import { createLogger } from '../src/observability/logger';
import { createRegistry, type Registry } from '../src/observability/metrics';
import { startWorker } from '../src/worker';
import { AwsCallCounter, isDynamoRead, isDynamoWrite, sum, type AwsCallFigures, type CallCounts } from './worker-aws-calls';
import { payloadSizes, textPayloads, type BenchLine } from './worker-payloads';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 5000);
const SHAPE = process.env.BENCH_EVENTS_PER_PAYLOAD ?? 'mix';
const CONCURRENCY = Number(process.env.WORKER_CONCURRENCY ?? 32);
/** (f) on the embedded default's durable queue unless BENCH_SQS=memory. */
const DURABLE_SECTION = process.env.BENCH_SQS !== 'memory';
/** local-aws-sqs answers concurrent long polls only when their wait ends: keep it short, as the embedded default does. */
const WAIT_TIME_SECONDS = 1;
const VISIBILITY_TIMEOUT_SECONDS = 180;
/** The whole run, stand-ins included, stops itself past this. */
const BOUND_MS = DURABLE_SECTION ? 480_000 : 300_000;
/** (e): conversations (FIFO message groups) the events are spread over. */
const FIFO_CONTACTS = 100;
const WORKER_PHASE_MS = 120_000;
const BUCKET = 'wa-ingress-bench';
const TABLES = { linesTable: 'wa-ingress-lines', dedupeTable: 'wa-ingress-dedupe', contactsTable: 'wa-ingress-contacts' };
const LINE: BenchLine & { lineId: string } = {
  lineId: 'bench',
  phoneNumberId: '106540352242922',
  displayPhoneNumber: '15550783881',
  wabaId: '102290129340398',
};
/** cpuMsPerEvent: issue 18's, for (a), the worker on the standard queue. */
const TARGETS = { sqsPerEvent: 0.3, dynamoWritesPerEvent: 2.1, lineLookupsPerEvent: 0.01, cpuMsPerEvent: 1.5 };
/** Another build's dist (e.g. /work/wt-base/dist): its own bench:worker (../dist-bench/bench/worker.js) runs after this one, and the CPU per event is compared. */
const BASELINE_DIST = process.env.BENCH_BASELINE_DIST;

interface StandInInfo {
  endpoints: { sqs: string; dynamodb: string; s3: string };
  queueUrl: string;
  dlqUrl: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  birdFlowUrl: string;
  /** The embedded default's SQS (fauxqs on disk) and its FIFO main queue and DLQ, for (f). */
  durable?: { sqs: string; queueUrl: string; dlqUrl: string };
}

interface BirdStats {
  keys: string[];
  duplicates: number;
  attempts: Record<string, number>;
  firstAcceptAt?: number;
  lastAcceptAt?: number;
}

interface WorkerResult {
  timedOut: boolean;
  startedAt: number;
  firstReceiveAt?: number;
  doneAt: number;
  cpuMicros: number;
  calls: AwsCallFigures;
  /** Label values joined by `,` → counter value, per metric. */
  metrics: Record<string, Record<string, number>>;
}

// ---------------------------------------------------------------- child: stand-ins

async function serveStandIns(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'wa-ingress-bench-worker-'));
  let firstAcceptAt: number | undefined;
  let lastAcceptAt: number | undefined;
  // The stand-in logs each acceptance: its timestamps end the worker's wall time. Warnings pass through.
  const birdLogger = createLogger({
    level: 'info',
    destination: {
      write(line: string) {
        if (line.includes('"bird stand-in accepted event"')) {
          lastAcceptAt = Date.now();
          firstAcceptAt ??= lastAcceptAt;
        } else if (!line.includes('"level":"info"')) process.stderr.write(line);
      },
    },
  });
  const [aws, bird, embedded] = await Promise.all([
    startAwsStandIns({ dataDir, visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_SECONDS }),
    startBirdStandIn({ logger: birdLogger }),
    // What `npm start` runs: its queues (fauxqs, SQLite under <dir>/sqs, in a child process). Only its SQS is used.
    DURABLE_SECTION ? startAwsStandIns(embeddedAwsStandInOptions(join(dataDir, 'embedded'), VISIBILITY_TIMEOUT_SECONDS)) : undefined,
  ]);
  const info: StandInInfo = {
    endpoints: aws.endpoints,
    queueUrl: aws.queueUrl,
    dlqUrl: aws.dlqUrl,
    credentials: aws.credentials,
    birdFlowUrl: bird.flowUrl(),
    ...(embedded ? { durable: { sqs: embedded.endpoints.sqs, queueUrl: embedded.queueUrl, dlqUrl: embedded.dlqUrl } } : {}),
  };
  process.on('message', (m: Message) => {
    if (m.type === 'bird-reset') {
      bird.reset();
      firstAcceptAt = lastAcceptAt = undefined;
      process.send?.({ type: 'bird-reset-done' });
    } else if (m.type === 'cpu') {
      const { user, system } = process.cpuUsage();
      // The durable queue's process is this one's only child.
      const queueMicros = childPidsOf(process.pid).reduce((n, pid) => n + cpuSecondsOf(pid) * 1e6, 0);
      process.send?.({ type: 'cpu', micros: user + system, queueMicros });
    } else if (m.type === 'bird-stats') {
      const calls = bird.received().filter((c) => c.path === BIRD_STANDIN_FLOW_PATH);
      const attempts: Record<string, number> = {};
      for (const a of bird.attempts()) attempts[String(a.status)] = (attempts[String(a.status)] ?? 0) + 1;
      const stats: BirdStats = {
        keys: calls.map((c) => c.idempotencyKey),
        duplicates: calls.filter((c) => c.duplicate).length,
        attempts,
        firstAcceptAt,
        lastAcceptAt,
      };
      process.send?.({ type: 'bird-stats', ...stats });
    }
  });
  process.on('disconnect', () => {
    void Promise.allSettled([bird.stop(), aws.stop(), embedded?.stop()]).finally(() => {
      rmSync(dataDir, { recursive: true, force: true });
      process.exit(0);
    });
  });
  process.send?.({ type: 'ready', ...info });
}

// ---------------------------------------------------------------- child: the worker

async function counterValues(registry: Registry, name: string): Promise<Record<string, number>> {
  const metric = registry.getSingleMetric(name);
  const out: Record<string, number> = {};
  if (!metric) return out;
  for (const v of (await metric.get()).values) {
    const key = Object.values(v.labels).join(',') || 'total';
    out[key] = (out[key] ?? 0) + v.value;
  }
  return out;
}

async function runWorker(): Promise<void> {
  const starting = nextMessage<{ info: StandInInfo; messages: number; durable?: boolean }>(process, 'start');
  process.send?.({ type: 'ready' });
  const { info, messages, durable } = await starting;
  // The worker role of main.ts, wired from the environment it would see pointed at the stand-ins.
  const loaded = loadConfig({
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    SQS_QUEUE_URL: info.queueUrl,
    SQS_DLQ_URL: info.dlqUrl,
    S3_BUCKET: BUCKET,
    DYNAMODB_LINES_TABLE: TABLES.linesTable,
    DYNAMODB_DEDUPE_TABLE: TABLES.dedupeTable,
    DYNAMODB_CONTACTS_TABLE: TABLES.contactsTable,
    WHATSAPP_VERIFY_TOKEN: 'bench',
    WHATSAPP_APP_SECRETS: 'bench',
    AWS_ENDPOINT_URL_SQS: info.endpoints.sqs,
    AWS_ENDPOINT_URL_DYNAMODB: info.endpoints.dynamodb,
    AWS_ENDPOINT_URL_S3: info.endpoints.s3,
    S3_FORCE_PATH_STYLE: 'true',
    WORKER_CONCURRENCY: String(CONCURRENCY),
    SQS_WAIT_TIME_SECONDS: String(WAIT_TIME_SECONDS),
    SQS_VISIBILITY_TIMEOUT_SECONDS: String(VISIBILITY_TIMEOUT_SECONDS),
  });
  // The stand-ins speak http on loopback: production's https-only Bird and media checks would refuse them.
  // On the durable queue, the embedded default's SQS settings (a release sent as 1 s, as fauxqs needs).
  const aws = durable ? { ...loaded.aws, ...embeddedAwsSettingsFor(info.endpoints) } : { ...loaded.aws, credentials: info.credentials };
  const config = { ...loaded, production: false, aws };
  const clients = createAwsClients(config.aws, Math.max(64, config.worker.concurrency * 2));
  const counter = new AwsCallCounter();
  counter.watch(clients);
  const registry = createRegistry({ defaultMetrics: false });
  const logger = createLogger({ level: config.logLevel });
  const lines = new CachedLineRegistry({
    store: new DynamoLineStore({ documents: clients.documents, tableName: config.dynamodb.linesTable }),
    ttlMs: config.ingress.lineCacheTtlMs,
    registry,
  });
  // The line's flow secret is the stand-in's literal: production would refuse it, so resolve as development does.
  const secrets = new ReferenceSecretResolver({ production: false, secretsManager: clients.secrets, cacheTtlMs: config.ingress.secretCacheTtlMs });

  const cpuStart = process.cpuUsage();
  const startedAt = Date.now();
  const worker = startWorker({ config, clients, lines, secrets, registry, logger });
  const deadline = startedAt + WORKER_PHASE_MS;
  let timedOut = false;
  // Done when every message is deleted: the deletes are the last thing the worker owes SQS.
  for (;;) {
    const deleted = (await counterValues(registry, 'wa_ingress_worker_messages_deleted_total')).total ?? 0;
    if (deleted >= messages) break;
    if (Date.now() > deadline) {
      timedOut = true;
      break;
    }
    await sleep(10);
  }
  const doneAt = Date.now();
  const cpu = process.cpuUsage(cpuStart);
  const calls = counter.snapshot();
  const metrics: WorkerResult['metrics'] = {};
  for (const name of [
    'wa_ingress_worker_events_total',
    'wa_ingress_line_store_lookups_total',
    'wa_ingress_sqs_calls_total',
    'wa_ingress_worker_messages_received_total',
    'wa_ingress_worker_messages_retried_total',
    'wa_ingress_dedupe_claims_total',
    'wa_ingress_bird_attempts_total',
    'wa_ingress_worker_group_held_total',
  ]) {
    metrics[name] = await counterValues(registry, name);
  }
  const result: WorkerResult = {
    timedOut,
    startedAt,
    firstReceiveAt: counter.firstReceiveAt,
    doneAt,
    cpuMicros: cpu.user + cpu.system,
    calls,
    metrics,
  };
  process.send?.({ type: 'result', ...result });
  await worker.stop();
  clients.destroy();
  process.disconnect?.();
}

// ---------------------------------------------------------------- this process: loader, baselines, report

/** Enqueue as the ingress does: its producer, its attributes, SendMessageBatch of up to 10. */
async function loadQueue(clients: AwsClients, queueUrl: string, payloads: Buffer[]): Promise<{ seconds: number; batches: number }> {
  // As the ingress does: each payload in its conversation's group (used on a FIFO queue only).
  const registry = createRegistry({ defaultMetrics: false });
  const producer = new SqsBatchProducer({
    sqs: clients.sqs,
    queueUrl,
    claimCheck: new S3ClaimCheckWriter({ s3: clients.s3, bucket: BUCKET }),
    batchWindowMs: 2,
    timeoutMs: 120_000,
    claimCheckThresholdBytes: 900 * 1024,
    logger: createLogger({ level: 'warn' }),
    registry,
  });
  const started = Date.now();
  await Promise.all(
    payloads.map((body) =>
      producer.enqueue({ body, attributes: { receivedAt: new Date().toISOString(), requestId: randomUUID() }, routes: [{ groupId: conversationGroupId(JSON.parse(body.toString('utf8'))) }] }),
    ),
  );
  const batches = (await counterValues(registry, 'wa_ingress_sqs_send_batches_total')).ok ?? 0;
  return { seconds: (Date.now() - started) / 1000, batches };
}

interface Measured {
  seconds: number;
  cpuMicros: number;
}

async function measure(work: () => Promise<void>): Promise<Measured> {
  const cpuStart = process.cpuUsage();
  const started = process.hrtime.bigint();
  await work();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuStart);
  return { seconds, cpuMicros: cpu.user + cpu.system };
}

/** Baseline (b): receive and delete every message, nothing else, with the poller's number of receive loops. */
async function drainQueue(sqs: SQSClient, queueUrl: string, messages: number): Promise<CallCounts> {
  const calls: CallCounts = { ReceiveMessage: 0, DeleteMessageBatch: 0 };
  let received = 0;
  const loops = Math.min(4, Math.ceil(CONCURRENCY / 10));
  const loop = async () => {
    while (received < messages) {
      calls.ReceiveMessage! += 1;
      const out = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: WAIT_TIME_SECONDS,
          VisibilityTimeout: VISIBILITY_TIMEOUT_SECONDS,
          MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
          AttributeNames: ['All'],
          MessageAttributeNames: ['All'],
        }),
      );
      const batch = out.Messages ?? [];
      if (batch.length === 0) continue;
      received += batch.length;
      calls.DeleteMessageBatch! += 1;
      const deleted = await sqs.send(
        new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: batch.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }),
      );
      if (deleted.Failed?.length) throw new Error(`baseline delete failed: ${JSON.stringify(deleted.Failed)}`);
    }
  };
  await Promise.all(Array.from({ length: loops }, loop));
  return calls;
}

interface FlowRequest {
  key: string;
  body: Buffer;
  signature: string;
}

/** The exact bytes the worker's Bird client would send for each event (no media), built and signed before timing. */
function flowRequests(payloads: Buffer[], line: Line): FlowRequest[] {
  if (line.bird.transport !== 'flow') throw new Error('the bench line uses the flow transport');
  const signingSecret = line.bird.flowSigningSecret ?? '';
  const receivedAt = new Date().toISOString();
  return payloads.flatMap((payload) =>
    envelopeToEvents(JSON.parse(payload.toString('utf8'))).map((event) => {
      const body = encodeFlowBody(buildFlowBody({ lineId: line.lineId, target: line.bird, event, receivedAt }));
      return { key: event.key, body, signature: signFlowBody(signingSecret, body) };
    }),
  );
}

/** Baseline (c): POST every flow body to the Bird stand-in, CONCURRENCY at a time, over the same fetch the client uses. */
async function postAll(url: string, secret: string, requests: FlowRequest[]): Promise<void> {
  let next = 0;
  const loop = async () => {
    while (next < requests.length) {
      const request = requests[next++]!;
      const response = await fetch(url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json',
          Authorization: `Bearer ${secret}`,
          'Idempotency-Key': request.key,
          [FLOW_SIGNATURE_HEADER]: request.signature,
        },
        body: request.body,
        redirect: 'manual',
      });
      await response.text();
      if (response.status !== 202) throw new Error(`Bird stand-in answered ${response.status} to the baseline`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
}

/** Baseline (d): what the worker's dedupe costs per event on its own, CONCURRENCY events at a time. */
async function claimAndComplete(clients: AwsClients, keys: string[]): Promise<void> {
  const store = new DynamoDedupeStore({
    documents: clients.documents,
    itemUpdates: clients.itemUpdates,
    tableName: TABLES.dedupeTable,
    ttlDays: 15,
    leaseMs: VISIBILITY_TIMEOUT_SECONDS * 1000,
    visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_SECONDS,
  });
  let next = 0;
  const loop = async () => {
    while (next < keys.length) {
      const key = `bench-baseline#${keys[next++]!}`;
      const claim = await store.claim(key);
      if (claim.outcome !== 'claimed') throw new Error(`baseline claim of ${key} answered ${claim.outcome}`);
      await claim.lease.complete();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
}

async function queueDepth(sqs: SQSClient, queueUrl: string): Promise<{ visible: number; inFlight: number }> {
  const { Attributes: a = {} } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
  );
  return { visible: Number(a.ApproximateNumberOfMessages ?? NaN), inFlight: Number(a.ApproximateNumberOfMessagesNotVisible ?? NaN) };
}

function exactlyOnce(expected: string[], accepted: string[]) {
  const counts = new Map<string, number>();
  for (const key of accepted) counts.set(key, (counts.get(key) ?? 0) + 1);
  const expectedSet = new Set(expected);
  const missing = expected.filter((k) => !counts.has(k)).length;
  const repeated = [...counts.values()].filter((n) => n > 1).length;
  const unexpected = [...counts.keys()].filter((k) => !expectedSet.has(k)).length;
  return { accepted: accepted.length, distinct: counts.size, missing, repeated, unexpected, ok: missing === 0 && repeated === 0 && unexpected === 0 };
}

const fixed = (n: number, digits: number) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
const list = (counts: CallCounts) =>
  Object.entries(counts)
    .sort(([, a], [, b]) => b - a)
    .map(([name, n]) => `${name} ${n}`)
    .join(', ') || 'none';

/**
 * The baseline build's own bench:worker, run now with the same env (events, shape, concurrency,
 * BENCH_SQS), so both builds meet the same machine in the same session; its (a) and (e) rows are
 * read from its output and set beside this run's.
 */
async function compareWithBaseline(dist: string, own: { standard: number; fifo: number }): Promise<void> {
  const bench = resolve(dist, '../dist-bench/bench/worker.js');
  if (!existsSync(bench)) {
    process.stdout.write(`\nbaseline: no ${bench}; build it with \`npm run build && npm run bench:build\` in that checkout\n`);
    return;
  }
  process.stdout.write(`\nbaseline: ${bench}, the same env, run now (its full output with BENCH_DEBUG)…\n`);
  const env = { ...process.env };
  delete env.BENCH_BASELINE_DIST;
  const child = spawn(process.execPath, [bench], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((done) => child.once('exit', done));
  if (process.env.BENCH_DEBUG) process.stdout.write(output);
  // A row ends in its CPU ms/event column.
  const cpuOf = (row: string) => Number(new RegExp(`^\\(${row}\\) worker.*\\s(\\d+\\.\\d+)\\s*$`, 'm').exec(output)?.[1]);
  const base = { standard: cpuOf('a'), fifo: cpuOf('e') };
  if (code !== 0 || !Number.isFinite(base.standard)) {
    process.stdout.write(`baseline bench failed (exit ${code}); its last output:\n${output.slice(-3000)}\n`);
    return;
  }
  process.stdout.write(
    `worker CPU ms per event, this build / baseline: (a) standard queue ${fixed(own.standard, 3)} / ${fixed(base.standard, 3)} = ×${fixed(own.standard / base.standard, 2)}; ` +
      `(e) FIFO ${fixed(own.fifo, 3)} / ${fixed(base.fifo, 3)} = ×${fixed(own.fifo / base.fifo, 2)}\n`,
  );
}

async function main(): Promise<void> {
  const children: ChildProcess[] = [];
  const watchdog = setTimeout(() => {
    process.stderr.write(`worker bench: still running after ${BOUND_MS / 1000} s; stopping\n`);
    for (const child of children) child.kill('SIGKILL');
    process.exit(1);
  }, BOUND_MS);

  const standIns = fork(__filename, ['standins'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(standIns);
  const info = await nextMessage<StandInInfo>(standIns, 'ready');
  const clients = createAwsClients({ region: 'us-east-1', endpoints: info.endpoints, forcePathStyle: true, credentials: info.credentials }, 64);
  await ensureResources(clients, { ...TABLES, bucket: BUCKET });
  const line = lineSchema.parse({
    ...LINE,
    bird: { transport: 'flow', flowUrl: info.birdFlowUrl, flowSecret: BIRD_STANDIN_FLOW_SECRET, flowSigningSecret: BIRD_STANDIN_FLOW_SIGNING_SECRET },
  });
  await new DynamoLineStore({ documents: clients.documents, tableName: TABLES.linesTable }).put(line);

  const sizes = payloadSizes(EVENTS, SHAPE);
  const payloads = textPayloads(LINE, sizes);
  const requests = flowRequests(payloads, line);
  const expectedKeys = requests.map((r) => r.key);
  if (new Set(expectedKeys).size !== EVENTS) throw new Error(`expected ${EVENTS} distinct event keys, built ${new Set(expectedKeys).size}`);
  const meanBytes = payloads.reduce((n, p) => n + p.length, 0) / payloads.length;
  process.stdout.write(
    `worker bench: ${EVENTS} text events in ${payloads.length} SQS messages (events per payload: ${SHAPE}; mean body ${meanBytes.toFixed(0)} B), ` +
      `WORKER_CONCURRENCY ${CONCURRENCY}, SQS_WAIT_TIME_SECONDS ${WAIT_TIME_SECONDS}, flow transport, no media\n` +
      `processes: stand-ins (local-aws-sqs, dynalite, s3rver, Bird) in one child, the worker in another, loader and baselines in this one` +
      `${DURABLE_SECTION ? "; for (f) the embedded default's fauxqs in a child of the stand-ins' process" : ''}\n`,
  );

  // (b) SQS alone.
  const loadB = await loadQueue(clients, info.queueUrl, payloads);
  let sqsBaselineCalls: CallCounts = {};
  const sqsBaseline = await measure(async () => {
    sqsBaselineCalls = await drainQueue(clients.sqs, info.queueUrl, payloads.length);
  });

  // (c) Bird alone; the stand-in then forgets these keys so the worker's POSTs count afresh.
  const birdBaseline = await measure(() => postAll(info.birdFlowUrl, BIRD_STANDIN_FLOW_SECRET, requests));
  const birdBaselineStats = await ask<BirdStats>(standIns, { type: 'bird-stats' }, 'bird-stats');
  const baselineOnce = exactlyOnce(expectedKeys, birdBaselineStats.keys);
  if (!baselineOnce.ok) throw new Error(`Bird baseline did not deliver every event once: ${JSON.stringify(baselineOnce)}`);
  await ask(standIns, { type: 'bird-reset' }, 'bird-reset-done');

  // (d) Dedupe alone.
  const dedupeBaseline = await measure(() => claimAndComplete(clients, expectedKeys));

  // (a) The worker, with the queue fully loaded before it starts.
  const loadA = await loadQueue(clients, info.queueUrl, payloads);
  const runPhase = async (phaseInfo: StandInInfo, messages: number, sqs: SQSClient = clients.sqs, durable = false) => {
    const profileDir = process.env.BENCH_PROFILE;
    const workerChild = fork(__filename, ['worker'], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [],
    });
    children.push(workerChild);
    await nextMessage(workerChild, 'ready');
    const cpuBefore = await ask<{ micros: number; queueMicros: number }>(standIns, { type: 'cpu' }, 'cpu');
    const phaseResult = await ask<WorkerResult>(workerChild, { type: 'start', info: phaseInfo, messages, durable }, 'result');
    const cpuAfter = await ask<{ micros: number; queueMicros: number }>(standIns, { type: 'cpu' }, 'cpu');
    const phaseStandInCpu = cpuAfter.micros - cpuBefore.micros;
    const phaseBird = await ask<BirdStats>(standIns, { type: 'bird-stats' }, 'bird-stats');
    const depths = await Promise.all([queueDepth(sqs, phaseInfo.queueUrl), queueDepth(sqs, phaseInfo.dlqUrl)]);
    await new Promise((resolve) => workerChild.once('exit', resolve));
    return {
      result: phaseResult,
      standInCpu: phaseStandInCpu,
      durableQueueCpu: cpuAfter.queueMicros - cpuBefore.queueMicros,
      bird: phaseBird,
      queue: depths[0],
      dlq: depths[1],
    };
  };
  const { result, standInCpu, bird, queue, dlq } = await runPhase(info, payloads.length);

  // (e) The same on a FIFO queue, the events spread over FIFO_CONTACTS conversations (new wamids).
  await ask(standIns, { type: 'bird-reset' }, 'bird-reset-done');
  const fifoDlq = await clients.sqs.send(new CreateQueueCommand({ QueueName: 'bench-fifo-dlq.fifo', Attributes: { ...HIGH_THROUGHPUT_FIFO_ATTRIBUTES } }));
  const fifoQueue = await clients.sqs.send(
    new CreateQueueCommand({
      QueueName: 'bench-fifo.fifo',
      Attributes: {
        ...HIGH_THROUGHPUT_FIFO_ATTRIBUTES,
        VisibilityTimeout: String(VISIBILITY_TIMEOUT_SECONDS),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: 'arn:aws:sqs:us-east-1:000000000000:bench-fifo-dlq.fifo', maxReceiveCount: 10 }),
      },
    }),
  );
  const fifoPayloads = textPayloads(LINE, sizes, undefined, FIFO_CONTACTS);
  const fifoKeys = flowRequests(fifoPayloads, line).map((r) => r.key);
  const loadE = await loadQueue(clients, fifoQueue.QueueUrl!, fifoPayloads);
  const fifo = await runPhase({ ...info, queueUrl: fifoQueue.QueueUrl!, dlqUrl: fifoDlq.QueueUrl! }, fifoPayloads.length);
  const fifoOnce = exactlyOnce(fifoKeys, fifo.bird.keys);
  const fifoSeconds = ((fifo.bird.lastAcceptAt ?? fifo.result.doneAt) - (fifo.result.firstReceiveAt ?? fifo.result.startedAt)) / 1000;
  const fifoRate = EVENTS / fifoSeconds;

  // (f) The same FIFO run on the embedded default's durable queue (its own FIFO main queue and DLQ), new wamids.
  let durable: { seconds: number; rate: number; once: ReturnType<typeof exactlyOnce>; load: { seconds: number; batches: number }; phase: Awaited<ReturnType<typeof runPhase>> } | undefined;
  if (info.durable) {
    await ask(standIns, { type: 'bird-reset' }, 'bird-reset-done');
    const durableClients = createAwsClients(
      { region: 'us-east-1', ...embeddedAwsSettingsFor({ ...info.endpoints, sqs: info.durable.sqs }) },
      64,
    );
    const durablePayloads = textPayloads(LINE, sizes, undefined, FIFO_CONTACTS);
    const durableKeys = flowRequests(durablePayloads, line).map((r) => r.key);
    const load = await loadQueue(durableClients, info.durable.queueUrl, durablePayloads);
    const phase = await runPhase(
      { ...info, endpoints: { ...info.endpoints, sqs: info.durable.sqs }, queueUrl: info.durable.queueUrl, dlqUrl: info.durable.dlqUrl },
      durablePayloads.length,
      durableClients.sqs,
      true,
    );
    const seconds = ((phase.bird.lastAcceptAt ?? phase.result.doneAt) - (phase.result.firstReceiveAt ?? phase.result.startedAt)) / 1000;
    durable = { seconds, rate: EVENTS / seconds, once: exactlyOnce(durableKeys, phase.bird.keys), load, phase };
    durableClients.destroy();
  }

  // Figures.
  const once = exactlyOnce(expectedKeys, bird.keys);
  const wallStart = result.firstReceiveAt ?? result.startedAt;
  const wallEnd = bird.lastAcceptAt ?? result.doneAt;
  const workerSeconds = (wallEnd - wallStart) / 1000;
  const workerRate = EVENTS / workerSeconds;
  const sqsRate = EVENTS / sqsBaseline.seconds;
  const birdRate = EVENTS / birdBaseline.seconds;
  const dedupeRate = EVENTS / dedupeBaseline.seconds;
  const partsCpu = sqsBaseline.cpuMicros + birdBaseline.cpuMicros + dedupeBaseline.cpuMicros;
  const perEvent = (n: number) => n / EVENTS;
  const cpuMs = (micros: number) => micros / 1000 / EVENTS;

  const sqsCalls = sum(result.calls.sqs);
  const dynamoWrites = sum(result.calls.dynamodb, isDynamoWrite);
  const dynamoReads = sum(result.calls.dynamodb, isDynamoRead);
  const lookupMetric = result.metrics['wa_ingress_line_store_lookups_total'] ?? {};
  const lookups = sum(lookupMetric);
  const lineTableCalls = sum(result.calls.dynamodb, (k) => k.endsWith(` ${TABLES.linesTable}`));
  const events = result.metrics['wa_ingress_worker_events_total'] ?? {};

  const out: string[] = [];
  out.push(
    `queue loads by the ingress's SqsBatchProducer: ${payloads.length} messages in ${loadB.batches} and ${loadA.batches} SendMessageBatch calls (${fixed(loadB.seconds, 1)} s, ${fixed(loadA.seconds, 1)} s)`,
  );
  out.push('');
  out.push('                                          wall s   events/s   CPU ms/event (that process)');
  const row = (name: string, seconds: number, rate: number, cpu: number) =>
    `${name.padEnd(40)} ${fixed(seconds, 2).padStart(7)}   ${fixed(rate, 0).padStart(8)}   ${fixed(cpu, 3).padStart(8)}`;
  out.push(row('(a) worker: first receive → last Bird 2xx', workerSeconds, workerRate, cpuMs(result.cpuMicros)));
  out.push(row('(b) baseline: SQS receive + delete only', sqsBaseline.seconds, sqsRate, cpuMs(sqsBaseline.cpuMicros)));
  out.push(row('(c) baseline: Bird flow POSTs only', birdBaseline.seconds, birdRate, cpuMs(birdBaseline.cpuMicros)));
  out.push(row('(d) baseline: dedupe claim + complete only', dedupeBaseline.seconds, dedupeRate, cpuMs(dedupeBaseline.cpuMicros)));
  out.push(
    `ratio of events/s: (a)/(c) Bird alone ${fixed(workerRate / birdRate, 2)}, (a)/(b) SQS alone ${fixed(workerRate / sqsRate, 2)}, ` +
      `(a)/(d) dedupe alone ${fixed(workerRate / dedupeRate, 2)}`,
  );
  out.push(`worker CPU per event (a) ${fixed(cpuMs(result.cpuMicros), 3)} ms: target ≤ ${TARGETS.cpuMsPerEvent} ms: ${verdict(cpuMs(result.cpuMicros) <= TARGETS.cpuMsPerEvent)}`);
  out.push(
    `worker CPU per event / sum of the parts' (b)+(c)+(d) ${fixed(cpuMs(partsCpu), 3)} ms: ${fixed(result.cpuMicros / partsCpu, 2)}x`,
  );
  out.push(
    `worker process: startWorker → all ${payloads.length} messages deleted ${fixed((result.doneAt - result.startedAt) / 1000, 2)} s ` +
      `(first messages received ${fixed(((result.firstReceiveAt ?? NaN) - result.startedAt) / 1000, 2)} s after start), CPU ${fixed(result.cpuMicros / 1000, 0)} ms in all; ` +
      `meanwhile the stand-ins' process used ${fixed(cpuMs(standInCpu), 3)} CPU ms/event (${fixed(standInCpu / 1e6 / ((result.doneAt - result.startedAt) / 1000), 2)} cores)`,
  );
  out.push('');
  out.push(`AWS calls by the worker process (SDK middleware), per event:`);
  out.push(
    `  SQS            ${fixed(perEvent(sqsCalls), 4).padStart(7)}  target ≤ ${TARGETS.sqsPerEvent}: ${verdict(perEvent(sqsCalls) <= TARGETS.sqsPerEvent)}   (${list(result.calls.sqs)}; per message ${fixed(sqsCalls / payloads.length, 3)})`,
  );
  out.push(
    `  DynamoDB write ${fixed(perEvent(dynamoWrites), 4).padStart(7)}  target ≤ ${TARGETS.dynamoWritesPerEvent}: ${verdict(perEvent(dynamoWrites) <= TARGETS.dynamoWritesPerEvent)}`,
  );
  out.push(`  DynamoDB read  ${fixed(perEvent(dynamoReads), 4).padStart(7)}   (all DynamoDB calls: ${list(result.calls.dynamodb)})`);
  out.push(
    `  line lookups   ${fixed(perEvent(lookups), 4).padStart(7)}  target ≤ ${TARGETS.lineLookupsPerEvent}: ${verdict(perEvent(lookups) <= TARGETS.lineLookupsPerEvent)}   ` +
      `(wa_ingress_line_store_lookups_total ${list(lookupMetric)}; calls on ${TABLES.linesTable}: ${lineTableCalls}, the first one the cold cache)`,
  );
  out.push(
    `  poller's own wa_ingress_sqs_calls_total: ${list(result.metrics['wa_ingress_sqs_calls_total'] ?? {})}; baseline (b) made ${list(sqsBaselineCalls)} (${fixed(sum(sqsBaselineCalls) / EVENTS, 4)} per event)`,
  );
  out.push('');
  out.push(
    `Bird stand-in: ${once.accepted} accepted flow POSTs, ${once.distinct} distinct Idempotency-Keys of ${EVENTS} expected, ` +
      `missing ${once.missing}, accepted more than once ${once.repeated}, unexpected ${once.unexpected} → every event exactly once: ${once.ok ? 'yes' : 'NO'} ` +
      `(HTTP answers: ${list(bird.attempts)})`,
  );
  out.push(
    `worker outcomes: ${list(events)}; retried messages: ${list(result.metrics['wa_ingress_worker_messages_retried_total'] ?? {})}; ` +
      `queue left: ${queue.visible} visible, ${queue.inFlight} in flight; DLQ: ${dlq.visible + dlq.inFlight}${result.timedOut ? `; TIMED OUT after ${WORKER_PHASE_MS / 1000} s` : ''}`,
  );
  out.push('');
  out.push(
    `FIFO queue (high-throughput mode), the same ${EVENTS} events over ${FIFO_CONTACTS} contacts (= message groups), loaded in ${loadE.batches} SendMessageBatch calls (${fixed(loadE.seconds, 1)} s):`,
  );
  out.push(row(`(e) worker on FIFO, ${FIFO_CONTACTS} conversations`, fifoSeconds, fifoRate, cpuMs(fifo.result.cpuMicros)));
  out.push(`ratio of events/s: (e) FIFO / (a) standard ${fixed(fifoRate / workerRate, 2)}`);
  out.push(
    `  every event exactly once: ${fifoOnce.ok ? 'yes' : 'NO'} (missing ${fifoOnce.missing}, repeated ${fifoOnce.repeated}); held back behind a retried message: ` +
      `${list(fifo.result.metrics['wa_ingress_worker_group_held_total'] ?? {}) || 'none'}; retried: ${list(fifo.result.metrics['wa_ingress_worker_messages_retried_total'] ?? {})}; ` +
      `queue left ${fifo.queue.visible + fifo.queue.inFlight}, DLQ ${fifo.dlq.visible + fifo.dlq.inFlight}${fifo.result.timedOut ? `; TIMED OUT after ${WORKER_PHASE_MS / 1000} s` : ''}`,
  );
  if (durable) {
    const d = durable.phase;
    const phaseSeconds = (d.result.doneAt - d.result.startedAt) / 1000;
    out.push('');
    out.push(
      `The embedded default's durable queue (fauxqs, SQLite on disk, its own process; \`npm start\`'s FIFO main queue), the same ${EVENTS} events ` +
        `over ${FIFO_CONTACTS} contacts, loaded in ${durable.load.batches} SendMessageBatch calls (${fixed(durable.load.seconds, 1)} s):`,
    );
    out.push(row(`(f) worker on the durable FIFO queue`, durable.seconds, durable.rate, cpuMs(d.result.cpuMicros)));
    out.push(
      `ratio of events/s: (f) durable / (e) in-memory FIFO ${fixed(durable.rate / fifoRate, 2)}, (f) / (a) in-memory standard ${fixed(durable.rate / workerRate, 2)}; ` +
        `worker CPU per event (f)/(e) ${fixed(d.result.cpuMicros / fifo.result.cpuMicros, 2)}x`,
    );
    out.push(
      `  queue process (fauxqs) CPU ${fixed(cpuMs(d.durableQueueCpu), 3)} ms/event (${fixed(d.durableQueueCpu / 1e6 / phaseSeconds, 2)} cores); ` +
        `stand-ins' process (tables, Bird) ${fixed(cpuMs(d.standInCpu), 3)} ms/event, in (e) ${fixed(cpuMs(fifo.standInCpu), 3)} ms/event (queue included)`,
    );
    out.push(
      `  every event exactly once: ${durable.once.ok ? 'yes' : 'NO'} (missing ${durable.once.missing}, repeated ${durable.once.repeated}); held back behind a retried message: ` +
        `${list(d.result.metrics['wa_ingress_worker_group_held_total'] ?? {}) || 'none'}; retried: ${list(d.result.metrics['wa_ingress_worker_messages_retried_total'] ?? {})}; ` +
        `queue left ${d.queue.visible + d.queue.inFlight}, DLQ ${d.dlq.visible + d.dlq.inFlight}${d.result.timedOut ? `; TIMED OUT after ${WORKER_PHASE_MS / 1000} s` : ''}`,
    );
  }
  process.stdout.write(`${out.join('\n')}\n`);

  clients.destroy();
  standIns.disconnect();
  clearTimeout(watchdog);
  if (BASELINE_DIST) await compareWithBaseline(BASELINE_DIST, { standard: cpuMs(result.cpuMicros), fifo: cpuMs(fifo.result.cpuMicros) });
  if (!once.ok || result.timedOut || !fifoOnce.ok || fifo.result.timedOut) process.exitCode = 1;
  if (durable && (!durable.once.ok || durable.phase.result.timedOut)) process.exitCode = 1;
}

// Node 20 is what the project runs; the SDK's notice about Node 22 would only bury the figures (children inherit this).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const mode = process.argv[2];
const fail = (error: unknown) => {
  process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
};
if (mode === 'standins') serveStandIns().catch(fail);
else if (mode === 'worker') runWorker().catch(fail);
else main().catch(fail);
