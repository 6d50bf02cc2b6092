/**
 * The gather windows at low rates: what a few ms of waiting saves in SQS calls, and what it costs
 * in latency. Payloads go through the real ingress producer (SqsBatchProducer: BATCH_WINDOW_MS) and
 * the real poller (SqsPoller: SQS_RECEIVE_LINGER_MS) on bench/fast-sqs.ts, which answers long polls
 * on arrival and holds FIFO groups as SQS does, behind a proxy that counts the calls. Arrivals are
 * Poisson (seeded), each to one of 1,000 conversations; the handler takes BENCH_HANDLER_MS.
 *
 * Per rate and per setting, side by side in one run (the first setting is today's: no receive
 * linger, a 2 ms send window):
 *   - SendMessageBatch, ReceiveMessage, DeleteMessageBatch and all SQS calls per message;
 *   - ingress wait (enqueue → SQS said yes: what Meta waits for its 200) p50/p99;
 *   - pickup (enqueue → handler starts) p50/p99.
 *
 *   npm run bench:gather   (BENCH_RATES=10,25,100 BENCH_SECONDS=5 BENCH_QUEUES=fifo,standard
 *                           BENCH_SETTINGS=r0s2,r10s2,r10s10 BENCH_HANDLER_MS=5)
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Agent as HttpAgent } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { QUIET_SDK_LOGGER } from '../src/aws/clients';
import { SqsBatchProducer } from '../src/ingress/producer';
import { createLogger } from '../src/observability/logger';
import { createRegistry } from '../src/observability/metrics';
import { SqsPoller } from '../src/queue/poller';
import { startCountingProxy, type CountingProxy } from './counting-proxy';
import { startFastSqs } from './fast-sqs';

interface Setting {
  name: string;
  receiveLingerMs: number;
  batchWindowMs: number;
}

interface Figures {
  messages: number;
  calls: Record<string, number>;
  ingressMs: number[];
  pickupMs: number[];
}

const RATES = (process.env.BENCH_RATES ?? '10,25,100').split(',').map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const QUEUES = (process.env.BENCH_QUEUES ?? 'fifo,standard').split(',') as ('fifo' | 'standard')[];
const HANDLER_MS = Number(process.env.BENCH_HANDLER_MS ?? 5);
const CONVERSATIONS = 1000;
const SETTINGS: Setting[] = (process.env.BENCH_SETTINGS ?? 'r0s2,r10s2,r10s10').split(',').map((name) => {
  const match = /^r(\d+)s(\d+)$/.exec(name);
  if (!match) throw new Error(`BENCH_SETTINGS: "${name}" is not r<receive linger ms>s<send window ms>`);
  return { name, receiveLingerMs: Number(match[1]), batchWindowMs: Number(match[2]) };
});

/** mulberry32: the same arrivals for every setting. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function runOne(queueUrl: string, proxy: CountingProxy, sqs: SQSClient, rate: number, setting: Setting, seed: number): Promise<Figures> {
  const logger = createLogger({ level: 'error' }); // not the shutdown's warning about the long poll it aborts
  const registry = createRegistry();
  const fifo = queueUrl.endsWith('.fifo');
  const pickupMs: number[] = [];
  const ingressMs: number[] = [];
  let handled = 0;
  const producer = new SqsBatchProducer({
    sqs,
    queueUrl,
    claimCheck: { put: () => Promise.reject(new Error('no claim checks in this bench')) },
    batchWindowMs: setting.batchWindowMs,
    timeoutMs: 3000,
    claimCheckThresholdBytes: 900 * 1024,
    logger,
    registry,
  });
  const poller = new SqsPoller({
    sqs,
    queueUrl,
    logger,
    registry,
    concurrency: 32,
    waitTimeSeconds: 20,
    shutdownTimeoutMs: 3000,
    receiveLingerMs: setting.receiveLingerMs,
    // As the worker runs them: one receive loop on a FIFO queue, the default (4) on a standard one.
    ...(fifo ? { receiveLoops: 1 } : {}),
    handler: async (message) => {
      const { sentAt } = JSON.parse(message.body.toString('utf8')) as { sentAt: number };
      pickupMs.push(performance.now() - sentAt);
      await sleep(HANDLER_MS);
      handled += 1;
      return { action: 'delete' };
    },
  });
  poller.start();
  await sleep(100); // the first long poll is out
  proxy.reset();
  const next = random(seed);
  const total = Math.round(rate * SECONDS);
  const sends: Promise<void>[] = [];
  const start = performance.now();
  let due = start;
  for (let i = 0; i < total; i++) {
    due += (-Math.log(1 - next()) / rate) * 1000;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const sentAt = performance.now();
    const body = Buffer.from(JSON.stringify({ seed, i, sentAt, text: 'hello, I would like a black dress for Saturday' }));
    const groupId = `line-1:${String(Math.floor(next() * CONVERSATIONS)).padStart(6, '0')}`;
    sends.push(producer.enqueue({ body, attributes: {}, routes: [{ groupId }] }).then(() => void ingressMs.push(performance.now() - sentAt)));
  }
  await Promise.all(sends);
  const until = Date.now() + 10_000;
  while (handled < total && Date.now() < until) await sleep(10);
  await sleep(200); // the last deletes' linger
  const calls = proxy.counts();
  await poller.stop();
  if (handled < total) console.error(`  ! ${setting.name} at ${rate}/s: only ${handled} of ${total} handled`);
  return { messages: total, calls, ingressMs, pickupMs };
}

function perMessage(f: Figures, operation: string): number {
  return (f.calls[`sqs ${operation}`] ?? 0) / f.messages;
}

function allCalls(f: Figures): number {
  return Object.values(f.calls).reduce((a, b) => a + b, 0) / f.messages;
}

async function main(): Promise<void> {
  const names = QUEUES.flatMap((q) => RATES.flatMap((r) => SETTINGS.map((s) => `gather-${q}-${r}-${s.name}${q === 'fifo' ? '.fifo' : ''}`)));
  const fast = await startFastSqs(names);
  const proxy = await startCountingProxy(fast.endpoint, 'sqs');
  const sqs = new SQSClient({
    region: 'us-east-1',
    endpoint: proxy.url,
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
    md5: false,
    logger: QUIET_SDK_LOGGER,
    requestHandler: new NodeHttpHandler({ httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 64 }) }),
  });
  console.log(`gather windows: ${SECONDS} s per rate and setting, handler ${HANDLER_MS} ms, Poisson arrivals over ${CONVERSATIONS} conversations`);
  console.log('setting rXsY: SQS_RECEIVE_LINGER_MS=X, BATCH_WINDOW_MS=Y; figures per message; ms = p50/p99');
  try {
    for (const queue of QUEUES) {
      for (const rate of RATES) {
        console.log(`\n${queue} queue, ${rate}/s`);
        console.log('  setting    send   recv   del    all SQS  (× base)  ingress ms    pickup ms');
        let base: Figures | undefined;
        for (const setting of SETTINGS) {
          const figures = await runOne(fast.queueUrl(`gather-${queue}-${rate}-${setting.name}${queue === 'fifo' ? '.fifo' : ''}`), proxy, sqs, rate, setting, rate);
          base ??= figures;
          const ms = (values: number[]) => `${percentile(values, 50).toFixed(1)}/${percentile(values, 99).toFixed(1)}`;
          console.log(
            `  ${setting.name.padEnd(9)}  ${perMessage(figures, 'SendMessageBatch').toFixed(2)}   ${perMessage(figures, 'ReceiveMessage').toFixed(2)}   ${perMessage(figures, 'DeleteMessageBatch').toFixed(2)}   ${allCalls(figures).toFixed(2)}     ${(allCalls(figures) / allCalls(base)).toFixed(2)}      ${ms(figures.ingressMs).padEnd(12)}  ${ms(figures.pickupMs)}`,
          );
        }
      }
    }
  } finally {
    sqs.destroy();
    await proxy.close();
    await fast.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
