/**
 * End-to-end latency: a signed Meta webhook → ingress → SQS → worker → Bird flow (the stand-in's
 * echo AI answers a synchronous `replies` at once: zero think time) → the reply accepted onto the
 * outbound FIFO queue → sender → Graph `/messages`. Measured per event from the POST to the reply's
 * arrival at the Graph stand-in, at a steady rate of inbound events (50/s, then 200/s). Bird and
 * Graph answer at once, so this is the latency the gateway adds; the stand-ins' own round trips are
 * measured in the same run and printed beside it.
 *
 * SQS is bench/fast-sqs.ts, an in-memory SQS on the JSON protocol that answers a long poll as soon
 * as a message arrives, as SQS does (local-aws-sqs answers concurrent long polls only when their
 * wait ends and has no option for it). DynamoDB is dynalite and S3 s3rver, as in the embedded default.
 *
 * Processes: the stand-ins in three children (AWS, SQS, Bird + Graph), the gateway as
 * `node dist/main.js all` (the embedded default's role; production splits it) in another, the loader here.
 * Run: `npm run bench:e2e`. Env: BENCH_RATES (`50,200`), BENCH_SECONDS (15 per rate).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sign } from '../src/ingress/signature';
import { FLOW_SIGNATURE_HEADER, signFlowBody } from '../src/bird';
import { startAwsStandIns } from '../src/local/aws-standins';
import { BIRD_STANDIN_FLOW_SECRET, BIRD_STANDIN_FLOW_SIGNING_SECRET, startBirdStandIn } from '../src/local/bird-standin';
import { startGraphStandIn } from '../src/local/graph-standin';
import { createLogger } from '../src/observability/logger';
import { startFastSqs } from './fast-sqs';
import { ask, nextMessage, type Message } from './ipc';

const RATES = (process.env.BENCH_RATES ?? '50,200').split(',').map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const APP_SECRET = 'bench-app-secret';
const GRAPH_TOKEN = 'bench-graph-token';
const PHONE_NUMBER_ID = '106540352242922';
const QUEUES = { inbound: 'wa-ingress-bench', inboundDlq: 'wa-ingress-bench-dlq', outbound: 'wa-ingress-bench-outbound.fifo', outboundDlq: 'wa-ingress-bench-outbound-dlq.fifo' };
const TARGET = { p50: 100, p99: 400 };

interface StandIns {
  sqs: string;
  dynamodb: string;
  s3: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  birdFlowUrl: string;
  graphUrl: string;
}

// ---------------------------------------------------------------- children: stand-ins

/**
 * Three children, so no stand-in's event loop queues another's requests: DynamoDB and S3
 * (dynalite in memory, s3rver), SQS (bench/fast-sqs.ts), and the Bird and Graph stand-ins.
 */
type StandInKind = 'aws' | 'sqs' | 'http';

async function serveStandIns(kind: StandInKind): Promise<void> {
  const quiet = createLogger({ level: 'warn' });
  let close: () => Promise<unknown>;
  let info: Partial<StandIns>;
  if (kind === 'aws') {
    // No dataDir: dynalite in memory (LevelDB on disk would make the store, not the gateway, the bottleneck).
    const aws = await startAwsStandIns({ visibilityTimeoutSeconds: 30 });
    info = { dynamodb: aws.endpoints.dynamodb, s3: aws.endpoints.s3, credentials: aws.credentials };
    close = () => aws.stop();
  } else if (kind === 'sqs') {
    const sqs = await startFastSqs(Object.values(QUEUES), { visibilityTimeoutSeconds: 30 });
    info = { sqs: sqs.endpoint };
    close = () => sqs.close();
    process.on('message', (m: Message) => {
      if (m.type === 'dwell') process.send?.({ type: 'dwell', dwell: sqs.dwell() });
    });
  } else {
    const [bird, graph] = await Promise.all([startBirdStandIn({ echo: true, logger: quiet }), startGraphStandIn({ token: GRAPH_TOKEN, logger: quiet })]);
    // Only the reply's arrival is measured; Meta's status webhooks would be extra inbound load.
    graph.messages.setStatuses(false);
    info = { birdFlowUrl: bird.flowUrl(), graphUrl: graph.baseUrl };
    close = () => Promise.allSettled([bird.stop(), graph.stop()]);
    process.on('message', (m: Message) => {
      if (m.type === 'arrivals') {
        // The reply's text is "echo: <the inbound text>", and the inbound text names the event.
        const arrivals = graph.messages
          .sends()
          .filter((s) => s.outcome === 'accepted')
          .map((s) => [String((s.body.text as { body?: string } | undefined)?.body ?? '').replace(/^echo: /, ''), s.at] as const);
        process.send?.({ type: 'arrivals', arrivals });
      } else if (m.type === 'reset') {
        graph.messages.reset();
        graph.messages.setStatuses(false);
        bird.reset();
        process.send?.({ type: 'reset-done' });
      }
    });
  }
  process.on('disconnect', () => void close().finally(() => process.exit(0)));
  process.send?.({ type: 'ready', ...info });
}

// ---------------------------------------------------------------- this process: gateway, loader, report

/** Each event from its own user, as at a real line: one person's messages are ordered (one FIFO group), different people's run in parallel. */
function webhook(text: string, wamid: string, contact: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [
        {
          id: '102290129340398',
          changes: [
            {
              field: 'messages',
              value: {
                messaging_product: 'whatsapp',
                metadata: { display_phone_number: '15550783881', phone_number_id: PHONE_NUMBER_ID },
                contacts: [{ profile: { name: 'Bench User' }, wa_id: contact }],
                messages: [{ from: contact, id: wamid, timestamp: String(Math.floor(Date.now() / 1000)), type: 'text', text: { body: text } }],
              },
            },
          ],
        },
      ],
    }),
  );
}

const agent = new Agent({ keepAlive: true, maxSockets: 256 });

function post(url: string, body: Buffer, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': String(body.length), ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function waitHealthy(url: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not up yet */
    }
    await sleep(50);
  }
  throw new Error(`${url} never became healthy`);
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((done) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
  });
}

/** CPU seconds a process has used (Linux /proc; NaN elsewhere). */
function cpuSecondsOf(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

interface RateResult {
  /** Gateway CPU milliseconds per event, and the machine's 1-minute load average at the end. */
  cpuMsPerEvent: number;
  standInsCpuMsPerEvent: Record<string, number>;
  load: number;
  /** Per queue: send → first receive, p50 and p99 (ms). */
  queueWait: Record<string, { p50: number; p99: number }>;
  rate: number;
  sent: number;
  refused: number;
  replied: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

interface Children {
  aws: ChildProcess;
  sqs: ChildProcess;
  http: ChildProcess;
}

async function runRate(children: Children, gatewayPid: number | undefined, webhookUrl: string, rate: number, run: string): Promise<RateResult> {
  await ask(children.http, { type: 'reset' }, 'reset-done');
  await ask(children.sqs, { type: 'dwell' }, 'dwell');
  const cpuBefore = cpuSecondsOf(gatewayPid);
  const standInsBefore = [children.aws, children.sqs, children.http].map((c) => cpuSecondsOf(c.pid));
  const total = Math.round(rate * SECONDS);
  const sentAt = new Map<string, number>();
  let refused = 0;
  const posts: Promise<void>[] = [];
  const started = performance.now();
  for (let i = 0; i < total; i++) {
    // A steady schedule: event i leaves at i/rate seconds, whatever the previous answers took.
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const text = `${run}-${rate}-${i}`;
    const body = webhook(text, `wamid.bench.${run}.${rate}.${i}`, String(15550000000 + i));
    sentAt.set(text, Date.now());
    posts.push(
      post(webhookUrl, body, { 'x-hub-signature-256': sign(APP_SECRET, body) }).then(
        (status) => {
          if (status !== 200) refused++;
        },
        () => {
          refused++;
        },
      ),
    );
  }
  await Promise.all(posts);
  let arrivals: Array<readonly [string, number]> = [];
  const dwell: Record<string, number[]> = {};
  let last = -1;
  // Every reply, or 10 s without a new one, or 2 minutes after the last POST: what is late by then is reported missing.
  const tailDeadline = Date.now() + 120_000;
  for (let quiet = 0; quiet < 20 && Date.now() < tailDeadline; ) {
    await sleep(500);
    arrivals = (await ask<{ arrivals: Array<readonly [string, number]> }>(children.http, { type: 'arrivals' }, 'arrivals')).arrivals;
    const waited = await ask<{ dwell: Record<string, number[]> }>(children.sqs, { type: 'dwell' }, 'dwell');
    for (const [queue, waits] of Object.entries(waited.dwell)) (dwell[queue] ??= []).push(...waits);
    const mine = arrivals.filter(([text]) => sentAt.has(text)).length;
    if (mine >= total - refused) break;
    quiet = mine === last ? quiet + 1 : 0;
    last = mine;
  }
  const latencies = arrivals
    .filter(([text]) => sentAt.has(text))
    .map(([text, at]) => at - sentAt.get(text)!)
    .sort((a, b) => a - b);
  const queueWait = Object.fromEntries(
    Object.entries(dwell)
      .filter(([, waits]) => waits.length > 0)
      .map(([queue, waits]) => {
        const sorted = waits.sort((a, b) => a - b);
        return [queue, { p50: percentile(sorted, 50), p99: percentile(sorted, 99) }];
      }),
  );
  return {
    cpuMsPerEvent: ((cpuSecondsOf(gatewayPid) - cpuBefore) * 1000) / total,
    standInsCpuMsPerEvent: Object.fromEntries(
      (['aws', 'sqs', 'http'] as const).map((k, i) => [k, ((cpuSecondsOf(children[k].pid) - standInsBefore[i]!) * 1000) / total]),
    ),
    load: loadavg()[0]!,
    queueWait,
    rate,
    sent: total,
    refused,
    replied: latencies.length,
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    max: latencies.at(-1) ?? NaN,
  };
}

/** The stand-ins' own share: a flow POST to the Bird stand-in and a send to the Graph stand-in, back to back. */
async function standInRoundTrips(info: StandIns, n = 200): Promise<{ p50: number; p99: number }> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const reference = `baseline-${i}`;
    const flow = Buffer.from(
      JSON.stringify({ reference, kind: 'message', field: 'messages', line: { lineId: 'bench' }, contact: { waId: '15550001111' }, receivedAt: new Date().toISOString(), message: { id: `wamid.b${i}`, type: 'text', text: 'x' }, raw: {} }),
    );
    const send = Buffer.from(JSON.stringify({ messaging_product: 'whatsapp', to: '15550001111', type: 'text', text: { body: `baseline ${i}` } }));
    const t0 = performance.now();
    await post(info.birdFlowUrl, flow, { authorization: `Bearer ${BIRD_STANDIN_FLOW_SECRET}`, 'idempotency-key': reference, [FLOW_SIGNATURE_HEADER]: signFlowBody(BIRD_STANDIN_FLOW_SIGNING_SECRET, flow) });
    await post(`${info.graphUrl}/v25.0/${PHONE_NUMBER_ID}/messages`, send, { authorization: `Bearer ${GRAPH_TOKEN}` });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

async function main(): Promise<void> {
  const child = (kind: StandInKind) => fork(__filename, ['--stand-ins', kind], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const children: Children = { aws: child('aws'), sqs: child('sqs'), http: child('http') };
  const parts = await Promise.all(Object.values(children).map((c) => nextMessage<Partial<StandIns>>(c, 'ready')));
  const info = Object.assign({}, ...parts) as StandIns;
  const dir = mkdtempSync(join(tmpdir(), 'wa-ingress-bench-e2e-gw-'));
  const linesFile = join(dir, 'lines.json');
  writeFileSync(
    linesFile,
    JSON.stringify([
      {
        lineId: 'bench',
        phoneNumberId: PHONE_NUMBER_ID,
        wabaId: '102290129340398',
        displayPhoneNumber: '15550783881',
        accessToken: GRAPH_TOKEN,
        bird: { transport: 'flow', flowUrl: info.birdFlowUrl, flowSecret: BIRD_STANDIN_FLOW_SECRET, flowSigningSecret: BIRD_STANDIN_FLOW_SIGNING_SECRET },
        // The read/typing call is part of the gateway's work on every message: keep it on.
        presence: { markRead: true, typing: true },
        sendRateLimit: 1000,
      },
    ]),
  );
  const port = await freePort();
  const queueUrl = (name: string) => `${info.sqs}/000000000000/${name}`;
  // BENCH_PROFILE=<dir>: a V8 CPU profile of the gateway, to see where its time goes.
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  const gateway = spawn(process.execPath, [...profile, resolve(__dirname, '../../dist/main.js'), 'all'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'development',
      LOG_LEVEL: 'warn',
      PORT: String(port),
      DATA_DIR: dir,
      LINES_FILE: linesFile,
      WHATSAPP_VERIFY_TOKEN: 'bench',
      WHATSAPP_APP_SECRETS: APP_SECRET,
      SQS_QUEUE_URL: queueUrl(QUEUES.inbound),
      SQS_DLQ_URL: queueUrl(QUEUES.inboundDlq),
      SQS_OUTBOUND_QUEUE_URL: queueUrl(QUEUES.outbound),
      SQS_OUTBOUND_DLQ_URL: queueUrl(QUEUES.outboundDlq),
      S3_BUCKET: 'wa-ingress-bench',
      S3_FORCE_PATH_STYLE: 'true',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: info.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: info.credentials.secretAccessKey,
      AWS_ENDPOINT_URL_SQS: info.sqs,
      AWS_ENDPOINT_URL_DYNAMODB: info.dynamodb,
      AWS_ENDPOINT_URL_S3: info.s3,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      CREATE_MISSING_RESOURCES: 'true',
      GRAPH_API_BASE_URL: info.graphUrl,
      MEDIA_ALLOWED_HOSTS: '127.0.0.1',
      // Real SQS long polling: the fast stand-in answers as soon as a message arrives.
      SQS_WAIT_TIME_SECONDS: '20',
    },
  });
  // Its log (warn and above) is kept, and printed if it does not come up.
  let gatewayLog = '';
  let gatewayLogLines = 0;
  gateway.stdout?.on('data', (chunk: Buffer) => {
    gatewayLog = (gatewayLog + chunk.toString()).slice(-20_000);
    gatewayLogLines += chunk.toString().split('\n').length - 1;
  });
  const exited = new Promise((r) => gateway.once('exit', r));
  const stop = async () => {
    // The gateway drains first (its last writes need the stand-ins), then the stand-ins go.
    gateway.kill('SIGTERM');
    await exited;
    for (const c of Object.values(children)) c.disconnect();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitHealthy(`http://127.0.0.1:${port}/readyz`).catch((error: Error) => {
      throw new Error(`${error.message}; gateway log:\n${gatewayLog}`);
    });
    const webhookUrl = `http://127.0.0.1:${port}/webhooks/whatsapp`;
    const run = Date.now().toString(36);
    // Warm up (JIT, sockets, table and line caches), not measured.
    await runRate(children, gateway.pid, webhookUrl, 20, `${run}w`);
    const baseline = await standInRoundTrips(info);
    const results: RateResult[] = [];
    for (const rate of RATES) results.push(await runRate(children, gateway.pid, webhookUrl, rate, run));

    const ms = (v: number) => (Number.isFinite(v) ? `${v.toFixed(0)} ms` : 'n/a');
    process.stdout.write(
      `\nbench:e2e — inbound webhook → Bird (echo, zero think time) → reply at Graph; ${SECONDS} s per rate, gateway = node dist/main.js all\n` +
        `SQS: bench/fast-sqs.ts (in-memory, long poll answered on arrival); DynamoDB: dynalite; S3: s3rver; 2 cores shared by all processes\n\n` +
        `rate/s  sent  refused  replied   p50      p90      p99      max\n`,
    );
    for (const r of results) {
      process.stdout.write(
        `${String(r.rate).padEnd(7)} ${String(r.sent).padEnd(5)} ${String(r.refused).padEnd(8)} ${String(r.replied).padEnd(9)} ${ms(r.p50).padEnd(8)} ${ms(r.p90).padEnd(8)} ${ms(r.p99).padEnd(8)} ${ms(r.max)}\n`,
      );
    }
    for (const r of results) {
      const waits = Object.entries(r.queueWait).map(([q, w]) => `${q} p50 ${w.p50} ms / p99 ${w.p99} ms`);
      process.stdout.write(
        `  at ${r.rate}/s: CPU ms per event: gateway ${r.cpuMsPerEvent.toFixed(1)}, stand-ins ${Object.entries(r.standInsCpuMsPerEvent)
          .map(([k, v]) => `${k} ${v.toFixed(1)}`)
          .join(' / ')}; load average ${r.load.toFixed(1)}; time on the queues (send → first receive): ${waits.join('; ')}\n`,
      );
    }
    if (process.env.BENCH_DEBUG) process.stdout.write(`gateway log lines: ${gatewayLogLines}; last:\n${gatewayLog.slice(-3000)}\n`);
    process.stdout.write(`\nstand-ins' own round trips (Bird flow POST + Graph send, sequential): p50 ${baseline.p50.toFixed(1)} ms, p99 ${baseline.p99.toFixed(1)} ms\n`);
    const at50 = results.find((r) => r.rate === 50);
    if (at50) {
      const ok = at50.p50 <= TARGET.p50 && at50.p99 <= TARGET.p99 && at50.replied === at50.sent;
      process.stdout.write(`target at 50/s: p50 ≤ ${TARGET.p50} ms, p99 ≤ ${TARGET.p99} ms, every event replied: ${ok ? 'MET' : 'NOT MET'}\n`);
    }
  } finally {
    await stop();
  }
}

const standInIndex = process.argv.indexOf('--stand-ins');
if (standInIndex >= 0) {
  void serveStandIns(process.argv[standInIndex + 1] as StandInKind);
} else {
  main().then(
    () => process.exit(0),
    (error: Error) => {
      process.stderr.write(`bench:e2e failed: ${error.stack ?? error.message}\n`);
      process.exit(1);
    },
  );
}
