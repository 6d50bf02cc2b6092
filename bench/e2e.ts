/**
 * End-to-end: a signed Meta webhook → ingress → SQS → worker → Bird flow (the stand-in's echo AI
 * answers a synchronous `replies` at once: zero think time) → the reply accepted onto the outbound
 * FIFO queue → sender → Graph `/messages` → the reply's three statuses (sent, delivered, read) back
 * through the webhook: a full round trip. Latency is measured per event from the POST to the reply's
 * arrival at the Graph stand-in, at a steady rate of inbound events. Bird and Graph answer at once,
 * so this is the latency the gateway adds; the stand-ins' own round trips are measured in the same
 * run and printed beside it.
 *
 * Cost: the gateway's CPU (from /proc) per full round trip, counted once every status has been
 * handled, raw and with the gateway's idle CPU subtracted; then the same rate again with statuses
 * off (the message's half), so a status's share is the difference over three. Counting proxies in
 * the stand-ins' processes give the DynamoDB, SQS and HTTP (Bird, Graph) calls per round trip.
 *
 * SQS is bench/fast-sqs.ts, an in-memory SQS on the JSON protocol that answers a long poll as soon
 * as a message arrives, as SQS does (local-aws-sqs answers concurrent long polls only when their
 * wait ends and has no option for it). DynamoDB is dynalite and S3 s3rver, as in the embedded default.
 *
 * Side by side: BENCH_BASELINE_DIST=<another build's dist> (e.g. /work/wt-base/dist after `npm run build`
 * there) starts that build's gateway too, on the same stand-ins with its own tables and queues, and every
 * rate runs on each gateway one after the other, so the ratios compare builds under the same load.
 * BENCH_FORWARD_STATUSES sets the line's `forwardStatuses` for this build's gateway: `failed`, `all`,
 * `none`, or `both` (the default: one gateway with `failed`, one with `all`). A build that does not know
 * the setting ignores it (the line schema strips unknown keys); the baseline's line leaves it out.
 *
 * Per stage (at the first rate, each gateway): three more runs split the round trip, each figure a
 * difference of measured CPU, less idle: the ingress request is a run whose inbound queue the SQS
 * stand-in holds back (only the webhook requests run); the inbound event is a run whose flow answers
 * with no reply, less the ingress request; the reply send is the message's half (statuses off) less
 * that no-reply run; a status is the full round trip less the message's half, over three (its webhook
 * request and its event).
 *
 * Processes: the stand-ins in three children (AWS, SQS, Bird + Graph), each gateway as
 * `node dist/main.js all` (the embedded default's role; production splits it) in another, the loader here.
 * Run: `npm run bench:e2e`. Env: BENCH_RATES (`25,100`), BENCH_SECONDS (12 per rate), BENCH_STATUSES
 * (`on`; `off` measures the message's half only, as this bench did before), BENCH_BASELINE_DIST,
 * BENCH_FORWARD_STATUSES (`both`), BENCH_PROFILE (a directory: V8 CPU profiles of the gateways).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sign } from '../src/ingress/signature';
import { FLOW_SIGNATURE_HEADER, signFlowBody } from '../src/bird';
import { startAwsStandIns } from '../src/local/aws-standins';
import { BIRD_STANDIN_FLOW_SECRET, BIRD_STANDIN_FLOW_SIGNING_SECRET, echoResponder, startBirdStandIn } from '../src/local/bird-standin';
import { startGraphStandIn } from '../src/local/graph-standin';
import { createLogger } from '../src/observability/logger';
import { startCountingProxy, type CountingProxy } from './counting-proxy';
import { startFastSqs } from './fast-sqs';
import { ask, nextMessage, type Message } from './ipc';
import { cpuSecondsOf } from './proc-cpu';
import { messagesWebhook } from './worker-payloads';

const RATES = (process.env.BENCH_RATES ?? '25,100').split(',').map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 12);
const STATUSES = process.env.BENCH_STATUSES !== 'off';
/** Meta's statuses for each reply the Graph stand-in accepts. */
const STATUSES_PER_REPLY = 3;
const APP_SECRET = 'bench-app-secret';
const GRAPH_TOKEN = 'bench-graph-token';
const LINE = { phoneNumberId: '106540352242922', wabaId: '102290129340398', displayPhoneNumber: '15550783881' };
/** Issue 18's targets: ≤ 8 ms of gateway CPU per round trip (forwardStatuses at its default), ≤ 14 ms with `all`; at 100 round trips/s with statuses, p99 ≤ 400 ms and every reply sent. */
const TARGET = { rate: 100, p99: 400, cpuMsPerRoundTrip: { failed: 8, all: 14 } as Record<string, number> };

/** A gateway under test: a build's dist and the line's forwardStatuses, with tables and queues of its own. */
interface Variant {
  key: string;
  label: string;
  dist: string;
  forwardStatuses?: string;
  baseline: boolean;
}

function variantsFromEnv(): Variant[] {
  const forward = process.env.BENCH_FORWARD_STATUSES ?? 'both';
  if (!['failed', 'all', 'none', 'both'].includes(forward)) throw new Error(`BENCH_FORWARD_STATUSES must be failed, all, none or both (got ${forward})`);
  const own = resolve(__dirname, '../../dist');
  const variants: Variant[] = [];
  const baselineDist = process.env.BENCH_BASELINE_DIST;
  if (baselineDist) variants.push({ key: 'base', label: 'baseline', dist: resolve(baselineDist), baseline: true });
  for (const value of forward === 'both' ? ['failed', 'all'] : [forward]) {
    variants.push({ key: value, label: `this build, forward ${value}`, dist: own, forwardStatuses: value, baseline: false });
  }
  return variants;
}

const queuesOf = (variant: Variant) => ({
  inbound: `wa-ingress-bench-${variant.key}`,
  inboundDlq: `wa-ingress-bench-${variant.key}-dlq`,
  outbound: `wa-ingress-bench-${variant.key}-outbound.fifo`,
  outboundDlq: `wa-ingress-bench-${variant.key}-outbound-dlq.fifo`,
});

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
  let proxies: CountingProxy[];
  if (kind === 'aws') {
    // No dataDir: dynalite in memory (LevelDB on disk would make the store, not the gateway, the bottleneck).
    const aws = await startAwsStandIns({ visibilityTimeoutSeconds: 30 });
    // S3 goes direct: s3rver checks SigV4's host, and no S3 call is on a text message's path.
    proxies = [await startCountingProxy(aws.endpoints.dynamodb, 'DynamoDB')];
    info = { dynamodb: proxies[0]!.url, s3: aws.endpoints.s3, credentials: aws.credentials };
    close = () => aws.stop();
  } else if (kind === 'sqs') {
    const sqs = await startFastSqs(variantsFromEnv().flatMap((v) => Object.values(queuesOf(v))), { visibilityTimeoutSeconds: 30 });
    proxies = [await startCountingProxy(sqs.endpoint, 'SQS')];
    info = { sqs: proxies[0]!.url };
    close = () => sqs.close();
    process.on('message', (m: Message) => {
      if (m.type === 'dwell') process.send?.({ type: 'dwell', dwell: sqs.dwell() });
      else if (m.type === 'hold') {
        sqs.hold(String(m.queue), m.held === true);
        process.send?.({ type: 'hold-done' });
      }
    });
  } else {
    const [bird, graph] = await Promise.all([startBirdStandIn({ echo: true, logger: quiet }), startGraphStandIn({ token: GRAPH_TOKEN, logger: quiet })]);
    proxies = [await startCountingProxy(bird.flowUrl(), 'Bird'), await startCountingProxy(graph.baseUrl, 'Graph')];
    // Statuses go back once the gateway is up (`webhook-target`), and each run says whether it wants them.
    graph.messages.setStatuses(false);
    info = { birdFlowUrl: proxies[0]!.url, graphUrl: proxies[1]!.url };
    close = () => Promise.allSettled([bird.stop(), graph.stop()]);
    process.on('message', (m: Message) => {
      if (m.type === 'webhook-target') {
        graph.messages.setWebhookTarget(String(m.url), APP_SECRET);
        process.send?.({ type: 'webhook-target-set' });
      } else if (m.type === 'statuses') {
        process.send?.({ type: 'statuses', accepted: graph.messages.statusWebhooks().filter((w) => w.httpStatus === 200).length });
      } else if (m.type === 'arrivals') {
        // The reply's text is "echo: <the inbound text>", and the inbound text names the event.
        const arrivals = graph.messages
          .sends()
          .filter((s) => s.outcome === 'accepted')
          .map((s) => [String((s.body.text as { body?: string } | undefined)?.body ?? '').replace(/^echo: /, ''), s.at] as const);
        process.send?.({ type: 'arrivals', arrivals });
      } else if (m.type === 'reset') {
        graph.messages.reset();
        graph.messages.setStatuses(m.statuses === true);
        bird.reset();
        // No replies: the flow answers each event with nothing to send (the inbound event's own cost).
        bird.respondWith(m.replies === false ? () => ({}) : echoResponder);
        process.send?.({ type: 'reset-done' });
      }
    });
  }
  process.on('message', (m: Message) => {
    if (m.type === 'counts') process.send?.({ type: 'counts', counts: Object.assign({}, ...proxies.map((p) => p.counts())) });
    else if (m.type === 'counts-reset') {
      for (const proxy of proxies) proxy.reset();
      process.send?.({ type: 'counts-reset-done' });
    }
  });
  process.on('disconnect', () => void Promise.allSettled(proxies.map((p) => p.close())).then(close).finally(() => process.exit(0)));
  process.send?.({ type: 'ready', ...info });
}

// ---------------------------------------------------------------- this process: gateway, loader, report

/** Each event from its own user, as at a real line: one person's messages are ordered (one FIFO group), different people's run in parallel. */
function webhook(text: string, wamid: string, contact: string): Buffer {
  const message = { from: contact, id: wamid, timestamp: String(Math.floor(Date.now() / 1000)), type: 'text', text: { body: text } };
  return Buffer.from(messagesWebhook(LINE, contact, 'Bench User', [message]));
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

/**
 * Events the gateway has finished: the worker's, plus statuses the ingress settled itself (INGRESS_SETTLES_STATUSES;
 * those it handed to SQS instead, `fallback`, are the worker's and counted there).
 */
async function eventsHandled(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    const series = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)/.exec(line);
    if (series?.[1] === 'wa_ingress_worker_events_total') total += Number(series[3]);
    if (series?.[1] === 'wa_ingress_ingress_statuses_total' && !series[2]?.includes('result="fallback"')) total += Number(series[3]);
  }
  return total;
}

/** Until the worker has handled no new event for 2 s (the previous run's statuses included), at most 2 minutes. */
async function waitQuiet(metricsUrl: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (let quiet = 0, last = -1; quiet < 4 && Date.now() < deadline; ) {
    await sleep(500);
    const handled = await eventsHandled(metricsUrl);
    quiet = handled === last ? quiet + 1 : 0;
    last = handled;
  }
}

/** The gateway's CPU milliseconds per second while nothing is sent (pollers, timers); call it once quiet. */
async function idleCpuMsPerSecond(pid: number | undefined, seconds = 3): Promise<number> {
  const before = cpuSecondsOf(pid);
  await sleep(seconds * 1000);
  return ((cpuSecondsOf(pid) - before) * 1000) / seconds;
}

interface Gateway {
  variant: Variant;
  pid: number | undefined;
  metricsUrl: string;
  webhookUrl: string;
  stop(): Promise<void>;
}

/** What a run asks of the stand-ins: Meta's statuses back or not; the flow answering with a reply or not. */
interface RunShape {
  statuses: boolean;
  replies: boolean;
  seconds: number;
}

interface RateResult {
  variant: Variant;
  statuses: boolean;
  idleCpuMsPerSecond: number;
  /** Gateway CPU milliseconds per round trip (with statuses when `statuses`), raw and with its idle CPU subtracted. */
  cpuMsPerEvent: number;
  cpuMsPerEventLessIdle: number;
  /** Calls the counting proxies saw, per round trip, by operation. */
  callsPerEvent: Record<string, number>;
  statusesHandled: number;
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

/** The stand-ins' processes and every gateway started, measured or idle. */
interface Rig {
  children: Children;
  gateways: Gateway[];
}

/** Every gateway quiet (no tail of another's run overlaps this one), stand-ins reset and pointed at this one, its idle CPU measured, call counts zeroed. */
async function prepareRun({ children, gateways }: Rig, gateway: Gateway, shape: Omit<RunShape, 'seconds'>): Promise<number> {
  await Promise.all(gateways.map((each) => waitQuiet(each.metricsUrl)));
  await ask(children.http, { type: 'webhook-target', url: gateway.webhookUrl }, 'webhook-target-set');
  await ask(children.http, { type: 'reset', statuses: shape.statuses, replies: shape.replies }, 'reset-done');
  await ask(children.sqs, { type: 'dwell' }, 'dwell');
  const idle = await idleCpuMsPerSecond(gateway.pid);
  await Promise.all(Object.values(children).map((c) => ask(c, { type: 'counts-reset' }, 'counts-reset-done')));
  return idle;
}

/** Signed webhooks at a steady rate: event i leaves at i/rate seconds, whatever the previous answers took. */
async function postAtRate(gateway: Gateway, rate: number, total: number, run: string): Promise<{ sentAt: Map<string, number>; refused: number }> {
  const sentAt = new Map<string, number>();
  let refused = 0;
  const posts: Promise<void>[] = [];
  const started = performance.now();
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const text = `${run}-${rate}-${i}`;
    const body = webhook(text, `wamid.bench.${run}.${rate}.${i}`, String(15550000000 + i));
    sentAt.set(text, Date.now());
    posts.push(
      post(gateway.webhookUrl, body, { 'x-hub-signature-256': sign(APP_SECRET, body) }).then(
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
  return { sentAt, refused };
}

async function runRate(rig: Rig, gateway: Gateway, rate: number, run: string, shape: RunShape): Promise<RateResult> {
  const { children } = rig;
  const gatewayPid = gateway.pid;
  const idle = await prepareRun(rig, gateway, shape);
  const eventsBefore = await eventsHandled(gateway.metricsUrl);
  const cpuBefore = cpuSecondsOf(gatewayPid);
  const standInsBefore = [children.aws, children.sqs, children.http].map((c) => cpuSecondsOf(c.pid));
  const total = Math.round(rate * shape.seconds);
  const started = performance.now();
  const { sentAt, refused } = await postAtRate(gateway, rate, total, run);
  let arrivals: Array<readonly [string, number]> = [];
  const dwell: Record<string, number[]> = {};
  let last = -1;
  // Every reply, or 10 s without a new one, or 2 minutes after the last POST: what is late by then is reported missing.
  const tailDeadline = Date.now() + 120_000;
  for (let quiet = 0; shape.replies && quiet < 20 && Date.now() < tailDeadline; ) {
    await sleep(500);
    arrivals = (await ask<{ arrivals: Array<readonly [string, number]> }>(children.http, { type: 'arrivals' }, 'arrivals')).arrivals;
    const waited = await ask<{ dwell: Record<string, number[]> }>(children.sqs, { type: 'dwell' }, 'dwell');
    for (const [queue, waits] of Object.entries(waited.dwell)) (dwell[queue] ??= []).push(...waits);
    const mine = arrivals.filter(([text]) => sentAt.has(text)).length;
    if (mine >= total - refused) break;
    quiet = mine === last ? quiet + 1 : 0;
    last = mine;
  }
  // The cost of a round trip is counted once the worker has handled its last event (the statuses come last).
  const replied = arrivals.filter(([text]) => sentAt.has(text)).length;
  const expectedEvents = total - refused + (shape.statuses ? STATUSES_PER_REPLY * replied : 0);
  let handled = 0;
  for (let quiet = 0, lastHandled = -1; quiet < 10 && Date.now() < tailDeadline + 60_000; ) {
    handled = (await eventsHandled(gateway.metricsUrl)) - eventsBefore;
    if (handled >= expectedEvents) break;
    quiet = handled === lastHandled ? quiet + 1 : 0;
    lastHandled = handled;
    await sleep(500);
  }
  const elapsedSeconds = (performance.now() - started) / 1000;
  const cpuMs = (cpuSecondsOf(gatewayPid) - cpuBefore) * 1000;
  const statusesAccepted = shape.statuses ? (await ask<{ accepted: number }>(children.http, { type: 'statuses' }, 'statuses')).accepted : 0;
  const callsPerEvent = await callsPer(children, total);
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
    variant: gateway.variant,
    statuses: shape.statuses,
    idleCpuMsPerSecond: idle,
    cpuMsPerEvent: cpuMs / total,
    cpuMsPerEventLessIdle: (cpuMs - idle * elapsedSeconds) / total,
    callsPerEvent,
    statusesHandled: Math.min(statusesAccepted, Math.max(0, handled - (total - refused))),
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

/** Calls the counting proxies saw since their reset, per round trip, by operation. */
async function callsPer(children: Children, total: number): Promise<Record<string, number>> {
  const counted = await Promise.all(Object.values(children).map((c) => ask<{ counts: Record<string, number> }>(c, { type: 'counts' }, 'counts')));
  return Object.fromEntries(
    Object.entries(Object.assign({}, ...counted.map((c) => c.counts)) as Record<string, number>)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, n]) => [name, n / total]),
  );
}

/**
 * The ingress request alone: the SQS stand-in holds the gateway's inbound queue back, so its worker
 * receives nothing while the webhooks arrive; CPU, less idle, per request, until the last is answered
 * and the producer's batches are out (1 s). Released afterwards, and drained (not measured).
 */
async function ingressOnly(rig: Rig, gateway: Gateway, rate: number, run: string, seconds: number): Promise<number> {
  const { children } = rig;
  const inbound = queuesOf(gateway.variant).inbound;
  const idle = await prepareRun(rig, gateway, { statuses: false, replies: false });
  await ask(children.sqs, { type: 'hold', queue: inbound, held: true }, 'hold-done');
  try {
    const cpuBefore = cpuSecondsOf(gateway.pid);
    const started = performance.now();
    const total = Math.round(rate * seconds);
    const { refused } = await postAtRate(gateway, rate, total, run);
    await sleep(1000);
    const cpuMs = (cpuSecondsOf(gateway.pid) - cpuBefore) * 1000;
    if (refused > 0) throw new Error(`ingress-only run: ${refused} of ${total} webhooks refused`);
    return (cpuMs - (idle * (performance.now() - started)) / 1000) / total;
  } finally {
    await ask(children.sqs, { type: 'hold', queue: inbound, held: false }, 'hold-done');
    // Drained before any other gateway becomes the stand-ins' webhook target.
    await waitQuiet(gateway.metricsUrl);
  }
}

interface Stages {
  variant: Variant;
  ingressRequest: number;
  inboundEvent: number;
  replySend: number;
  status: number;
  fullRoundTrip: number;
  /** The runs the stages are derived from, printed beside them. */
  messageHalf: RateResult;
  noReply: RateResult;
}

/** The round trip split by differences of runs at one rate (the file's header says how). */
async function measureStages(rig: Rig, gateway: Gateway, full: RateResult, run: string): Promise<Stages> {
  const rate = full.rate;
  const messageHalf = await runRate(rig, gateway, rate, `${run}m`, { statuses: false, replies: true, seconds: SECONDS });
  const noReply = await runRate(rig, gateway, rate, `${run}n`, { statuses: false, replies: false, seconds: SECONDS });
  const ingressRequest = await ingressOnly(rig, gateway, rate, `${run}i`, SECONDS);
  return {
    variant: gateway.variant,
    ingressRequest,
    inboundEvent: noReply.cpuMsPerEventLessIdle - ingressRequest,
    replySend: messageHalf.cpuMsPerEventLessIdle - noReply.cpuMsPerEventLessIdle,
    status: (full.cpuMsPerEventLessIdle - messageHalf.cpuMsPerEventLessIdle) / STATUSES_PER_REPLY,
    fullRoundTrip: full.cpuMsPerEventLessIdle,
    messageHalf,
    noReply,
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
    await post(`${info.graphUrl}/v25.0/${LINE.phoneNumberId}/messages`, send, { authorization: `Bearer ${GRAPH_TOKEN}` });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

/** A gateway (`node <dist>/main.js all`) with its own DATA_DIR, tables, queues, bucket and line file. */
async function startGateway(variant: Variant, info: StandIns): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), `wa-ingress-bench-e2e-${variant.key}-`));
  const linesFile = join(dir, 'lines.json');
  writeFileSync(
    linesFile,
    JSON.stringify([
      {
        lineId: 'bench',
        ...LINE,
        accessToken: GRAPH_TOKEN,
        bird: { transport: 'flow', flowUrl: info.birdFlowUrl, flowSecret: BIRD_STANDIN_FLOW_SECRET, flowSigningSecret: BIRD_STANDIN_FLOW_SIGNING_SECRET },
        // The read/typing call is part of the gateway's work on every message: keep it on.
        presence: { markRead: true, typing: true },
        sendRateLimit: 1000,
        ...(variant.forwardStatuses ? { forwardStatuses: variant.forwardStatuses } : {}),
      },
    ]),
  );
  const port = await freePort();
  const queues = queuesOf(variant);
  const queueUrl = (name: string) => `${info.sqs}/000000000000/${name}`;
  const table = (name: string) => `wa-ingress-${variant.key}-${name}`;
  // BENCH_PROFILE=<dir>: a V8 CPU profile of each gateway, to see where its time goes.
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${join(process.env.BENCH_PROFILE, variant.key)}`] : [];
  const gateway = spawn(process.execPath, [...profile, join(variant.dist, 'main.js'), 'all'], {
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
      SQS_QUEUE_URL: queueUrl(queues.inbound),
      SQS_DLQ_URL: queueUrl(queues.inboundDlq),
      SQS_OUTBOUND_QUEUE_URL: queueUrl(queues.outbound),
      SQS_OUTBOUND_DLQ_URL: queueUrl(queues.outboundDlq),
      DYNAMODB_LINES_TABLE: table('lines'),
      DYNAMODB_DEDUPE_TABLE: table('dedupe'),
      DYNAMODB_OUTBOUND_TABLE: table('outbound'),
      DYNAMODB_ERASURES_TABLE: table('erasures'),
      DYNAMODB_CONTACTS_TABLE: table('contacts'),
      S3_BUCKET: `wa-ingress-bench-${variant.key}`,
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
  let log = '';
  gateway.stdout?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-20_000);
  });
  const exited = new Promise((r) => gateway.once('exit', r));
  const stop = async () => {
    if (process.env.BENCH_DEBUG) process.stdout.write(`${variant.label} log, last:\n${log.slice(-3000)}\n`);
    gateway.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitHealthy(`http://127.0.0.1:${port}/readyz`);
  } catch (error) {
    await stop();
    throw new Error(`${variant.label} (${variant.dist}): ${(error as Error).message}; its log:\n${log}`);
  }
  return { variant, pid: gateway.pid, metricsUrl: `http://127.0.0.1:${port}/metrics`, webhookUrl: `http://127.0.0.1:${port}/webhooks/whatsapp`, stop };
}

// ---------------------------------------------------------------- report

const fixed = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
const ms = (v: number) => (Number.isFinite(v) ? `${v.toFixed(0)} ms` : 'n/a');
const versus = (value: number, base: number | undefined) => (base === undefined || !Number.isFinite(base) || base === 0 ? '' : ` (×${(value / base).toFixed(2)})`);
const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');

function callsSummary(r: RateResult, service: string): string {
  const own = Object.entries(r.callsPerEvent).filter(([name]) => name.startsWith(`${service} `));
  const sum = own.reduce((n, [, v]) => n + v, 0);
  return `${service} ${sum.toFixed(1)} (${own.map(([name, v]) => `${name.slice(service.length + 1)} ${v.toFixed(1)}`).join(', ')})`;
}

function report(results: RateResult[], stages: Stages[], standIns: { p50: number; p99: number }): string {
  const out: string[] = [];
  out.push(
    `\nbench:e2e — inbound webhook → Bird (echo, zero think time) → reply at Graph${STATUSES ? ' → sent/delivered/read back' : ' (statuses off)'}; ${SECONDS} s per rate, each gateway = node <dist>/main.js all, run one after the other`,
    `SQS: bench/fast-sqs.ts (in-memory, long poll answered on arrival); DynamoDB: dynalite; S3: s3rver; 2 cores shared by all processes; ratios (×) against the baseline at the same rate`,
    `gateways: ${[...new Set(results.map((r) => r.variant))].map((v) => `${v.label} = ${v.dist}${v.forwardStatuses ? ` (line forwardStatuses: ${v.forwardStatuses})` : " (its line as it was: no forwardStatuses)"}`).join('; ')}`,
    '',
    `rate/s  gateway                    sent  refused  replied  p50      p90      p99      max      CPU ms/round trip (less idle)`,
  );
  for (const r of results) {
    const base = results.find((b) => b.variant.baseline && b.rate === r.rate);
    out.push(
      `${String(r.rate).padEnd(7)} ${r.variant.label.padEnd(26)} ${String(r.sent).padEnd(5)} ${String(r.refused).padEnd(8)} ${String(r.replied).padEnd(8)} ${ms(r.p50).padEnd(8)} ${ms(r.p90).padEnd(8)} ` +
        `${(ms(r.p99) + (r.variant.baseline ? '' : versus(r.p99, base?.p99))).padEnd(8)} ${ms(r.max).padEnd(8)} ` +
        `${fixed(r.cpuMsPerEvent)} (${fixed(r.cpuMsPerEventLessIdle)})${r.variant.baseline ? '' : versus(r.cpuMsPerEventLessIdle, base?.cpuMsPerEventLessIdle)}`,
    );
  }
  out.push('');
  for (const r of results) {
    const waits = Object.entries(r.queueWait).map(([q, w]) => `${q} p50 ${w.p50} ms / p99 ${w.p99} ms`);
    out.push(
      `  at ${r.rate}/s, ${r.variant.label}, ${r.statuses ? 'full round trip' : "message's half (statuses off)"}: ` +
        `${r.statuses ? `statuses handled ${r.statusesHandled}/${STATUSES_PER_REPLY * r.replied}; ` : ''}idle ${fixed(r.idleCpuMsPerSecond)} ms/s; load average ${fixed(r.load)}`,
      `    calls per round trip: ${callsSummary(r, 'DynamoDB')}; ${callsSummary(r, 'SQS')}; HTTP: ${callsSummary(r, 'Bird')}, ${callsSummary(r, 'Graph')}`,
      `    stand-ins CPU ms per round trip: ${Object.entries(r.standInsCpuMsPerEvent)
        .map(([k, v]) => `${k} ${fixed(v)}`)
        .join(' / ')}; time on the queues (send → first receive): ${waits.join('; ')}`,
    );
  }
  if (results.length > 1) out.push(`  (SQS counts include the other, idle gateways' long polls: one ReceiveMessage per poller per 20 s.)`);
  if (stages.length > 0) {
    out.push(
      '',
      `per stage at ${results[0]!.rate}/s, gateway CPU ms less idle, each a difference of runs at that rate: ingress request = a run with the inbound queue held (webhook requests only);`,
      `inbound event = a run whose flow answers with no reply − ingress request; reply send = message's half (statuses off) − that no-reply run; status = (full round trip − message's half) / 3, its webhook request + its event`,
      `gateway                    ingress request   inbound event     reply send        status (each)     full round trip`,
    );
    for (const s of stages) {
      const base = s.variant.baseline ? undefined : stages.find((b) => b.variant.baseline);
      const cell = (k: 'ingressRequest' | 'inboundEvent' | 'replySend' | 'status' | 'fullRoundTrip') => `${fixed(s[k], 2)}${versus(s[k], base?.[k])}`.padEnd(18);
      out.push(`${s.variant.label.padEnd(26)} ${cell('ingressRequest')}${cell('inboundEvent')}${cell('replySend')}${cell('status')}${cell('fullRoundTrip')}`);
    }
    out.push(`  the runs they come from (gateway CPU ms per round trip, less idle; calls per round trip):`);
    for (const s of stages) {
      for (const [what, r] of [
        ["message's half (statuses off)", s.messageHalf],
        ['no reply (statuses off, the flow answers nothing)', s.noReply],
      ] as const) {
        out.push(
          `    ${s.variant.label}, ${what}: ${fixed(r.cpuMsPerEventLessIdle, 2)} ms, replies ${r.replied}/${r.sent}, p99 ${ms(r.p99)}; ` +
            `${callsSummary(r, 'DynamoDB')}; ${callsSummary(r, 'SQS')}; ${callsSummary(r, 'Bird')}, ${callsSummary(r, 'Graph')}`,
        );
      }
    }
    out.push(`  (each stage is a difference of two runs, so it carries both runs' noise; the full round trip is measured directly)`);
  }
  out.push('', `stand-ins' own round trips (Bird flow POST + Graph send, sequential): p50 ${fixed(standIns.p50)} ms, p99 ${fixed(standIns.p99)} ms`, '');
  out.push(`targets (issue 18):`);
  for (const r of results.filter((x) => x.rate === results[0]!.rate && x.statuses && !x.variant.baseline)) {
    const target = TARGET.cpuMsPerRoundTrip[r.variant.forwardStatuses ?? ''];
    if (target !== undefined) {
      out.push(`  gateway CPU ≤ ${target} ms per full round trip with forwardStatuses ${r.variant.forwardStatuses}: ${verdict(r.cpuMsPerEventLessIdle <= target)} (${fixed(r.cpuMsPerEventLessIdle)} ms less idle at ${r.rate}/s)`);
    }
  }
  for (const r of results.filter((x) => x.rate === TARGET.rate && x.statuses && !x.variant.baseline)) {
    out.push(
      `  at ${TARGET.rate}/s with statuses, ${r.variant.label}: p99 ≤ ${TARGET.p99} ms and every reply sent: ${verdict(r.p99 <= TARGET.p99 && r.replied === r.sent)} (p99 ${ms(r.p99)}, ${r.replied}/${r.sent} replies)`,
    );
  }
  if (!results.some((r) => r.rate === TARGET.rate)) out.push(`  at ${TARGET.rate}/s: not run (BENCH_RATES)`);
  return `${out.join('\n')}\n`;
}

async function main(): Promise<void> {
  const variants = variantsFromEnv();
  const child = (kind: StandInKind) => fork(__filename, ['--stand-ins', kind], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const children: Children = { aws: child('aws'), sqs: child('sqs'), http: child('http') };
  const parts = await Promise.all(Object.values(children).map((c) => nextMessage<Partial<StandIns>>(c, 'ready')));
  const info = Object.assign({}, ...parts) as StandIns;
  const gateways: Gateway[] = [];
  const rig: Rig = { children, gateways };
  try {
    // One at a time, so no start-up overlaps another's; all stay up, idle but for their long polls, while one is measured.
    for (const variant of variants) gateways.push(await startGateway(variant, info));
    const run = Date.now().toString(36);
    // Warm up (JIT, sockets, table and line caches), not measured.
    for (const gateway of gateways) await runRate(rig, gateway, 20, `${run}w${gateway.variant.key}`, { statuses: STATUSES, replies: true, seconds: Math.min(SECONDS, 6) });
    const standIns = await standInRoundTrips(info);
    const results: RateResult[] = [];
    for (const rate of RATES) {
      for (const gateway of gateways) results.push(await runRate(rig, gateway, rate, `${run}${gateway.variant.key}`, { statuses: STATUSES, replies: true, seconds: SECONDS }));
    }
    const stages: Stages[] = [];
    if (STATUSES) {
      for (const gateway of gateways) stages.push(await measureStages(rig, gateway, results.find((r) => r.variant === gateway.variant)!, `${run}${gateway.variant.key}`));
    }
    process.stdout.write(report(results, stages, standIns));
  } finally {
    // The gateways drain first (their last writes need the stand-ins), then the stand-ins go.
    for (const gateway of gateways) await gateway.stop();
    for (const c of Object.values(children)) c.disconnect();
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
