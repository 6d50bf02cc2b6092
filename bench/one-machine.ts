/**
 * One machine: round trips/s of the embedded default as `npm start` runs it — `node dist/main.js all`
 * on a fresh DATA_DIR, its queues durable (fauxqs on disk, its own child process), tables and objects
 * on disk — with Bird and Graph stand-ins here on loopback: Bird's echo AI answers each message with a
 * synchronous reply (zero think time), Graph records the reply and sends its sent/delivered/read
 * statuses back to the gateway, as Meta does. Signed webhooks, each from its own contact, are POSTed
 * at a fixed rate for BENCH_SECONDS per rate; a round trip ends when its reply reaches Graph.
 * Printed per rate: replies/s while sending, latency p50/p99 (POST → reply at Graph), replies missing
 * after a bounded tail, the gateway's CPU (its process and its queue process) per round trip, and the
 * machine's load average.
 * Run: `npm run bench:one-machine`. Env: BENCH_RATES (`10,20,40`), BENCH_SECONDS (20).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sign } from '../src/ingress/signature';
import { BIRD_STANDIN_FLOW_SECRET, BIRD_STANDIN_FLOW_SIGNING_SECRET, startBirdStandIn } from '../src/local/bird-standin';
import { startGraphStandIn } from '../src/local/graph-standin';
import { createLogger } from '../src/observability/logger';
import { childPidsOf, cpuSecondsOf } from './proc-cpu';
import { messagesWebhook } from './worker-payloads';

const RATES = (process.env.BENCH_RATES ?? '10,20,40').split(',').map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
/** After the last POST of a rate: replies later than this are counted missing. */
const TAIL_MS = 30_000;
const WARMUP = 20;
const APP_SECRET = 'bench-one-machine-app-secret';
const GRAPH_TOKEN = 'bench-one-machine-graph-token';
const LINE = { lineId: 'bench', phoneNumberId: '106540352242922', wabaId: '102290129340398', displayPhoneNumber: '15550783881' };
const MAIN_JS = resolve(__dirname, '../../dist/main.js');
/** The whole run stops itself past this. */
const BOUND_MS = (RATES.length * (SECONDS * 1000 + TAIL_MS) + 120_000) | 0;

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
  });
}

function webhook(text: string, wamid: string, contact: string): Buffer {
  return Buffer.from(messagesWebhook(LINE, contact, 'Bench User', [{ from: contact, id: wamid, timestamp: String(Math.floor(Date.now() / 1000)), type: 'text', text: { body: text } }]));
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 });
function post(url: string, body: Buffer): Promise<number> {
  return new Promise((done) => {
    const req = request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': String(body.length), 'x-hub-signature-256': sign(APP_SECRET, body) } },
      (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode ?? 0));
      },
    );
    req.on('error', () => done(0));
    req.end(body);
  });
}

const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! : NaN);
const load = () => loadavg().map((n) => n.toFixed(2)).join(' ');

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'wa-ingress-bench-one-machine-'));
  const quiet = createLogger({ level: 'warn' });
  const bird = await startBirdStandIn({ echo: true, logger: quiet });
  const graph = await startGraphStandIn({ token: GRAPH_TOKEN, logger: quiet, messages: { statusDelayMs: 200 } });
  const linesFile = join(dataDir, 'lines.json');
  writeFileSync(
    linesFile,
    JSON.stringify([
      {
        ...LINE,
        accessToken: GRAPH_TOKEN,
        bird: { transport: 'flow', flowUrl: bird.flowUrl(), flowSecret: BIRD_STANDIN_FLOW_SECRET, flowSigningSecret: BIRD_STANDIN_FLOW_SIGNING_SECRET },
      },
    ]),
  );
  const port = await freePort();
  // `npm start`'s environment on a fresh DATA_DIR (no SQS_QUEUE_URL: the embedded default), its Bird and Graph here.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    DATA_DIR: dataDir,
    PORT: String(port),
    CONSOLE_PORT: String(await freePort()),
    LOG_LEVEL: 'warn',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    LINES_FILE: linesFile,
    WHATSAPP_APP_SECRETS: APP_SECRET,
    WHATSAPP_ACCESS_TOKEN: GRAPH_TOKEN,
    GRAPH_API_BASE_URL: graph.baseUrl,
    META_WATCH_INTERVAL_SECONDS: '0',
  };
  // Its own process group, so the end (or the bound) reaches its queue process too.
  const gateway = spawn(process.execPath, [MAIN_JS, 'all'], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  gateway.stdout!.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-20_000)));
  gateway.stderr!.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-20_000)));
  const exited = new Promise((done) => gateway.once('exit', done));
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-gateway.pid!, signal);
    } catch {
      /* gone */
    }
  };
  const watchdog = setTimeout(() => {
    process.stderr.write(`one-machine bench: still running after ${BOUND_MS / 1000} s; stopping\n`);
    killGroup('SIGKILL');
    process.exit(1);
  }, BOUND_MS);
  const gatewayCpu = () => cpuSecondsOf(gateway.pid) + childPidsOf(gateway.pid!).reduce((n, pid) => n + cpuSecondsOf(pid), 0);
  const queueCpu = () => childPidsOf(gateway.pid!).reduce((n, pid) => n + cpuSecondsOf(pid), 0);

  const webhookUrl = `http://127.0.0.1:${port}/webhooks/whatsapp`;
  const out: string[] = [];
  try {
    for (let i = 0; ; i++) {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok).catch(() => false)) === true) break;
      if (i > 600 || gateway.exitCode !== null) throw new Error(`the gateway never became ready; its log:\n${log}`);
      await sleep(50);
    }
    graph.messages.setWebhookTarget(webhookUrl, APP_SECRET);
    const replyAt = () => {
      const at = new Map<string, number>();
      for (const s of graph.messages.sends()) {
        const text = String((s.body.text as { body?: string } | undefined)?.body ?? '').replace(/^echo: /, '');
        if (!at.has(text)) at.set(text, s.at);
      }
      return at;
    };
    const run = Date.now().toString(36);
    let contact = 0;
    const runRate = async (rate: number, seconds: number, label: string) => {
      const total = Math.round(rate * seconds);
      const sentAt = new Map<string, number>();
      const posts: Promise<number>[] = [];
      const cpuBefore = [gatewayCpu(), queueCpu()];
      const started = performance.now();
      for (let i = 0; i < total; i++) {
        const wait = started + (i * 1000) / rate - performance.now();
        if (wait > 1) await sleep(wait);
        const text = `${run}-${label}-${i}`;
        contact += 1;
        sentAt.set(text, Date.now());
        posts.push(post(webhookUrl, webhook(text, `wamid.bench.${run}.${label}.${i}`, String(16505550000 + contact))));
      }
      const statuses = await Promise.all(posts);
      const sendEnd = Date.now();
      const refused = statuses.filter((s) => s !== 200).length;
      let arrivals = replyAt();
      const mine = () => [...sentAt.keys()].filter((t) => arrivals.has(t)).length;
      const tailDeadline = Date.now() + TAIL_MS;
      while (mine() < total - refused && Date.now() < tailDeadline) {
        await sleep(200);
        arrivals = replyAt();
      }
      const wallSeconds = (performance.now() - started) / 1000;
      const cpuAfter = [gatewayCpu(), queueCpu()];
      const latencies = [...sentAt].filter(([t]) => arrivals.has(t)).map(([t, at]) => arrivals.get(t)! - at).sort((a, b) => a - b);
      const firstSent = Math.min(...sentAt.values());
      const inWindow = [...sentAt.keys()].filter((t) => (arrivals.get(t) ?? Infinity) <= sendEnd).length;
      const lastReply = Math.max(...[...sentAt.keys()].map((t) => arrivals.get(t) ?? -Infinity));
      return {
        rate,
        total,
        refused,
        replied: latencies.length,
        // Replies that reached Graph while the POSTs went on, per second of sending.
        repliesPerSecondWhileSending: inWindow / ((sendEnd - firstSent) / 1000),
        // All replies over first POST → last reply.
        repliesPerSecondOverall: latencies.length / ((lastReply - firstSent) / 1000),
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        cpuMsPerRoundTrip: ((cpuAfter[0]! - cpuBefore[0]!) * 1000) / Math.max(1, latencies.length),
        queueCpuMsPerRoundTrip: ((cpuAfter[1]! - cpuBefore[1]!) * 1000) / Math.max(1, latencies.length),
        wallSeconds,
        load: load(),
      };
    };
    // Warm-up (JIT, sockets, caches), not measured; then room for its statuses.
    await runRate(5, WARMUP / 5, 'warm');
    await sleep(2_000);
    out.push(
      `bench:one-machine — node dist/main.js all on a fresh DATA_DIR (queues: fauxqs on disk, in its own process), Bird echo + Graph stand-ins here; ` +
        `webhook → Bird (zero think time) → reply at Graph → sent/delivered/read back; ${SECONDS} s per rate, each message from its own contact; ` +
        `${cpus().length} cores; load average before: ${load()}`,
    );
    out.push('  rate/s  sent  refused  replied  replies/s (sending)  replies/s (to last)   p50 ms   p99 ms  CPU ms/round trip (gateway+queue; queue)  load avg after');
    for (const rate of RATES) {
      const r = await runRate(rate, SECONDS, `r${rate}`);
      const line =
        `  ${String(r.rate).padStart(6)}  ${String(r.total).padStart(4)}  ${String(r.refused).padStart(7)}  ${String(r.replied).padStart(7)}  ` +
        `${r.repliesPerSecondWhileSending.toFixed(1).padStart(19)}  ${r.repliesPerSecondOverall.toFixed(1).padStart(19)}  ` +
        `${r.p50.toFixed(0).padStart(7)}  ${r.p99.toFixed(0).padStart(7)}  ${`${r.cpuMsPerRoundTrip.toFixed(1)}; ${r.queueCpuMsPerRoundTrip.toFixed(1)}`.padStart(41)}  ${r.load}`;
      out.push(line);
      process.stdout.write(`${line}\n`);
      // Let the statuses and stragglers settle before the next rate.
      await sleep(3_000);
    }
    out.push(`missing = sent − refused − replied within ${TAIL_MS / 1000} s of the last POST; load average after: ${load()}`);
    process.stdout.write(`\n${out.join('\n')}\n`);
  } finally {
    clearTimeout(watchdog);
    killGroup('SIGTERM');
    await Promise.race([exited, sleep(15_000).then(() => killGroup('SIGKILL'))]);
    await Promise.allSettled([bird.stop(), graph.stop()]);
    agent.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
});
