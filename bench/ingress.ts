/**
 * Ingress benchmark: (a) the gateway with durable enqueue vs (b) a bare Express app that reads
 * the raw body and answers 200, in the same run, under the same autocannon load
 * (signed ~2 KB payloads, 64 connections). The gateway's SQS is local-aws-sqs, a wire-protocol
 * stand-in that answers from memory, run in its own process so it does not share the gateway's core.
 *
 * Run: `npm run bench:ingress` (env BENCH_SECONDS, default 10 per round; 2 rounds each, alternating;
 * BENCH_BASELINE_DIST=<another build's dist>: that build's gateway as (a0) in the same rounds).
 */
import autocannon from 'autocannon';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import express from 'express';
import http from 'node:http';
import { createHash, randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import { sign } from '../src/ingress/signature';
import { cpuSecondsOf } from './proc-cpu';
import { messagesWebhook } from './worker-payloads';

const SECRET = 'bench-app-secret';
const CONNECTIONS = 64;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = 2;

function payload(): Buffer {
  const message = (i: number) => ({
    from: '15550001111',
    id: `wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzQTdCRjVBRkQ4RkM3QkYyRjdBRgA${i}`,
    timestamp: '1730231903',
    text: { body: 'Hello! I would like to know more about the opening hours of your store this weekend, thanks.' },
    type: 'text',
  });
  const line = { wabaId: '102290129340398', displayPhoneNumber: '15550783881', phoneNumberId: '106540352242922' };
  return Buffer.from(messagesWebhook(line, '15550001111', 'Bench User', Array.from({ length: 7 }, (_, i) => message(i))));
}

function freePort(): Promise<number> {
  return new Promise((done) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
  });
}

async function waitHealthy(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} never became healthy`);
}

/** Child mode: the bare Express baseline. */
function serveBare(): void {
  const app = express();
  app.post('/webhooks/whatsapp', express.raw({ type: () => true, limit: 3 * 1024 * 1024 }), (_req, res) => {
    res.status(200).json({ status: 'queued' });
  });
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.listen(Number(process.env.PORT), '127.0.0.1');
}

/**
 * Child mode: a minimal SQS stand-in speaking the SDK's JSON protocol for SendMessageBatch and
 * GetQueueAttributes. It answers from memory at once (it keeps only a count and the MD5 the SDK
 * verifies), so the figures measure the gateway and not a queue implementation. local-aws-sqs
 * was measured first and spends ~40 ms per batch in its own bookkeeping, which would hide the gateway.
 */
function serveFastSqs(): void {
  let messages = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '');
      res.setHeader('content-type', 'application/x-amz-json-1.0');
      if (target === 'AmazonSQS.SendMessageBatch') {
        const input = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { Entries: Array<{ Id: string; MessageBody: string }> };
        if (input.Entries.length > 10) {
          res.statusCode = 400;
          res.end(JSON.stringify({ __type: 'com.amazonaws.sqs#TooManyEntriesInBatchRequest', message: 'max 10' }));
          return;
        }
        messages += input.Entries.length;
        res.end(
          JSON.stringify({
            Successful: input.Entries.map((e) => ({
              Id: e.Id,
              MessageId: randomUUID(),
              MD5OfMessageBody: createHash('md5').update(e.MessageBody, 'utf8').digest('hex'),
            })),
            Failed: [],
          }),
        );
      } else if (target === 'AmazonSQS.GetQueueAttributes') {
        res.end(JSON.stringify({ Attributes: { QueueArn: 'arn:aws:sqs:us-east-1:000000000000:bench' } }));
      } else {
        res.statusCode = 400;
        res.end(JSON.stringify({ __type: 'com.amazonaws.sqs#UnsupportedOperation', message: target }));
      }
    });
  });
  server.keepAliveTimeout = 65_000;
  server.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
  process.on('message', (m) => {
    if (m === 'count') process.send?.({ messages });
  });
}

interface Figures {
  rps: number;
  /** CPU of the server's process per request answered (µs), from /proc. */
  cpuUsPerRequest: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function load(url: string, body: Buffer, seconds: number, serverPid?: number): Promise<Figures> {
  const cpuBefore = cpuSecondsOf(serverPid);
  const result = await autocannon({
    url,
    method: 'POST',
    connections: CONNECTIONS,
    duration: seconds,
    body,
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(SECRET, body) },
  });
  const cpuUsPerRequest = ((cpuSecondsOf(serverPid) - cpuBefore) * 1e6) / Math.max(1, result.requests.total);
  return { rps: result.requests.average, cpuUsPerRequest, p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors };
}

async function main(): Promise<void> {
  const self = __filename;
  const body = payload();
  const sqsPort = await freePort();
  const gatewayPort = await freePort();
  const barePort = await freePort();

  const sqs = fork(self, ['sqs'], { env: { ...process.env, PORT: String(sqsPort) } });
  await new Promise((r) => sqs.once('message', r));
  const env = {
    ...process.env,
    NODE_ENV: 'production',
    PORT: String(gatewayPort),
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'bench',
    AWS_SECRET_ACCESS_KEY: 'bench',
    AWS_ENDPOINT_URL_SQS: `http://127.0.0.1:${sqsPort}`,
    SQS_QUEUE_URL: `http://127.0.0.1:${sqsPort}/000000000000/bench`,
    S3_BUCKET: 'bench-unused',
    WHATSAPP_VERIFY_TOKEN: 'bench',
    WHATSAPP_APP_SECRETS: SECRET,
  };
  const startGateway = (main: string, port: number): ChildProcess =>
    spawn(process.execPath, [...(process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE] : []), main, 'ingress'], { env: { ...env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'inherit'] });
  const gateway = startGateway(join(__dirname, '../src/main.js'), gatewayPort);
  // BENCH_BASELINE_DIST=<another build's dist>: that build's ingress too, in the same rounds, on the same SQS stand-in.
  const baselineDist = process.env.BENCH_BASELINE_DIST;
  const baselinePort = await freePort();
  const baseline = baselineDist ? startGateway(join(baselineDist, 'main.js'), baselinePort) : undefined;
  const bare = fork(self, ['bare'], { env: { ...process.env, PORT: String(barePort) } });
  const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
  const servers = [
    { name: '(a) gateway, durable enqueue', url: gatewayUrl, pid: gateway.pid },
    ...(baseline ? [{ name: '(a0) baseline gateway, durable enqueue', url: `http://127.0.0.1:${baselinePort}`, pid: baseline.pid }] : []),
    { name: '(b) bare Express, raw body + 200', url: `http://127.0.0.1:${barePort}`, pid: bare.pid },
  ];
  await Promise.all(servers.map((server) => waitHealthy(`${server.url}/healthz`)));

  process.stdout.write(
    `ingress benchmark: ${body.length}-byte signed payloads, ${CONNECTIONS} connections, ${SECONDS}s per round, ${ROUNDS} rounds each\n` +
      `SQS endpoint for (a): bench/ingress.ts's fast SQS JSON-protocol stand-in (SendMessageBatch answered from memory with the MD5s the SDK checks), in its own process\n` +
      (baselineDist ? `(a0): ${baselineDist}/main.js ingress, the same env and SQS stand-in\n` : ''),
  );
  // Warm-up: JIT, keep-alive sockets, SDK initialisation.
  for (const server of servers) await load(`${server.url}/webhooks/whatsapp`, body, 2);

  const figures = servers.map(() => [] as Figures[]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, server] of servers.entries()) figures[i]!.push(await load(`${server.url}/webhooks/whatsapp`, body, SECONDS, server.pid));
  }
  const mean = (xs: Figures[], k: keyof Figures) => xs.reduce((s, x) => s + x[k], 0) / xs.length;
  const row = (name: string, xs: Figures[]) =>
    `${name.padEnd(40)} ${mean(xs, 'rps').toFixed(0).padStart(8)} req/s   CPU ${mean(xs, 'cpuUsPerRequest').toFixed(0).padStart(5)} µs/req   p50 ${mean(xs, 'p50').toFixed(1).padStart(5)} ms   p99 ${mean(xs, 'p99').toFixed(1).padStart(5)} ms   non-2xx ${mean(xs, 'non2xx')}   errors ${mean(xs, 'errors')}`;
  process.stdout.write(servers.map((server, i) => `${row(server.name, figures[i]!)}\n`).join(''));
  const a = figures[0]!;
  const b = figures.at(-1)!;
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const cpu = (xs: Figures[]) => `${mean(xs, 'cpuUsPerRequest').toFixed(0)} µs`;
  const versusBare = (xs: Figures[], label: string) => {
    const ratio = mean(xs, 'rps') / mean(b, 'rps');
    return `${label}/b req/s ${ratio.toFixed(3)} (target ≥ 0.8: ${verdict(ratio >= 0.8)}); CPU per request ${label} ${cpu(xs)} vs b ${cpu(b)} (b/${label} ${(mean(b, 'cpuUsPerRequest') / mean(xs, 'cpuUsPerRequest')).toFixed(3)})`;
  };
  process.stdout.write(`${versusBare(a, 'a')}   load average ${loadavg()[0]!.toFixed(1)}\n`);
  if (baseline) {
    const a0 = figures[1]!;
    process.stdout.write(`${versusBare(a0, 'a0')}\nthis build against the baseline: req/s a/a0 ${(mean(a, 'rps') / mean(a0, 'rps')).toFixed(3)}, CPU per request a/a0 ${(mean(a, 'cpuUsPerRequest') / mean(a0, 'cpuUsPerRequest')).toFixed(3)}\n`);
  }
  const p99 = mean(a, 'p99');
  process.stdout.write(`gateway p99: ${p99.toFixed(1)} ms   target <= 50 ms: ${verdict(p99 <= 50)}\n`);
  const metrics = await (await fetch(`${gatewayUrl}/metrics`)).text();
  const batches = metrics.match(/^wa_ingress_sqs_send_batches_total\{outcome="ok"\} (\d+)/m)?.[1];
  const enqueued = metrics.match(/^wa_ingress_payloads_enqueued_total (\d+)/m)?.[1];
  if (batches && enqueued) process.stdout.write(`payloads enqueued: ${enqueued} in ${batches} SendMessageBatch calls (${(Number(enqueued) / Number(batches)).toFixed(2)} per call)\n`);

  const counted = await new Promise<{ messages: number }>((done) => {
    sqs.once('message', (m) => done(m as { messages: number }));
    sqs.send('count');
  });
  process.stdout.write(`messages the SQS stand-in accepted: ${counted.messages}\n`);
  gateway.kill('SIGTERM');
  baseline?.kill('SIGTERM');
  bare.kill('SIGTERM');
  sqs.kill('SIGTERM');
}

const mode = process.argv[2];
if (mode === 'bare') serveBare();
else if (mode === 'sqs') serveFastSqs();
else
  main().catch((error) => {
    process.stderr.write(`${(error as Error).stack}\n`);
    process.exit(1);
  });
