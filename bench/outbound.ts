/**
 * Outbound benchmark: N text replies through the real outbound path (QueueOutboundAcceptor →
 * outbound FIFO queue → startSender: SqsPoller + OutboundSender → DynamoDB claim → Graph stand-in
 * /messages → record SENT), against baselines measured in the same run: the same Graph stand-in
 * alone, POSTed the same bodies at the same concurrency; and the store alone, the sender's two
 * conditional writes per reply (claim, sent) at the same concurrency.
 *
 * Two processes: the stand-ins (local-aws-sqs with the FIFO queues, dynalite, Graph) in a child,
 * the loader, baseline and sender here. Figures: sends/s (and the ratio to Graph alone), Graph
 * calls per reply (exactly 1.00 with no faults), DynamoDB writes per reply (by operation).
 * Run: `npm run bench:outbound`. Env: BENCH_REPLIES (2000), BENCH_RECIPIENTS (200), OUTBOUND_CONCURRENCY (32).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAwsClients } from '../src/aws/clients';
import { ensureResources } from '../src/aws/resources';
import { createBirdClient } from '../src/bird';
import { loadConfig } from '../src/config/config';
import { lineSchema } from '../src/lines/line';
import { CachedLineRegistry } from '../src/lines/registry';
import { ReferenceSecretResolver } from '../src/lines/secrets';
import { DynamoLineStore } from '../src/lines/store';
import { startAwsStandIns } from '../src/local/aws-standins';
import { startGraphStandIn } from '../src/local/graph-standin';
import { createLogger } from '../src/observability/logger';
import { createRegistry, type Registry } from '../src/observability/metrics';
import { startSender } from '../src/outbound';
import { QueueOutboundAcceptor } from '../src/outbound/acceptor';
import { DynamoOutboundStore, OUTBOUND_WRITES_METRIC } from '../src/outbound/dynamo-outbound-store';
import { fenceOf } from '../src/outbound/outbound-store';

const REPLIES = Number(process.env.BENCH_REPLIES ?? 2000);
const RECIPIENTS = Number(process.env.BENCH_RECIPIENTS ?? 200);
const CONCURRENCY = Number(process.env.OUTBOUND_CONCURRENCY ?? 32);
const TOKEN = 'bench-graph-token';
const PHONE_NUMBER_ID = '106540352242922';
const BOUND_MS = 240_000;

type Message = { type: string } & Record<string, unknown>;
interface StandInInfo {
  endpoints: { sqs: string; dynamodb: string; s3: string };
  queueUrl: string;
  dlqUrl: string;
  outboundQueueUrl: string;
  outboundDlqUrl: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  graphUrl: string;
}
interface GraphStats {
  calls: number;
  accepted: number;
  distinctIds: number;
}

function nextMessage<T>(source: NodeJS.EventEmitter, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Message) => {
      if (m?.type !== type) return;
      source.off('message', onMessage);
      resolve(m as unknown as T);
    };
    source.on('message', onMessage);
    source.once('exit', () => reject(new Error(`the stand-ins went away before ${type}`)));
  });
}

function ask<T>(child: ChildProcess, message: Message, reply: string): Promise<T> {
  const answer = nextMessage<T>(child, reply);
  child.send(message);
  return answer;
}

// ---------------------------------------------------------------- child: stand-ins

async function serveStandIns(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'wa-ingress-bench-outbound-'));
  const [aws, graph] = await Promise.all([startAwsStandIns({ dataDir }), startGraphStandIn({ token: TOKEN })]);
  // No webhook target: statuses are not posted (the sender's own writes are what is measured).
  process.on('message', (m: Message) => {
    if (m.type === 'graph-reset') {
      graph.messages.reset();
      process.send?.({ type: 'graph-reset-done' });
    } else if (m.type === 'graph-stats') {
      const sends = graph.messages.sends();
      const stats: GraphStats = {
        calls: sends.length,
        accepted: sends.filter((s) => s.outcome === 'accepted').length,
        distinctIds: new Set(sends.map((s) => s.callbackData)).size,
      };
      process.send?.({ type: 'graph-stats', ...stats });
    }
  });
  process.on('disconnect', () => {
    void Promise.allSettled([graph.stop(), aws.stop()]).finally(() => {
      rmSync(dataDir, { recursive: true, force: true });
      process.exit(0);
    });
  });
  const info: StandInInfo = {
    endpoints: aws.endpoints,
    queueUrl: aws.queueUrl,
    dlqUrl: aws.dlqUrl,
    outboundQueueUrl: aws.outboundQueueUrl,
    outboundDlqUrl: aws.outboundDlqUrl,
    credentials: aws.credentials,
    graphUrl: graph.baseUrl,
  };
  process.send?.({ type: 'ready', ...info });
}

// ---------------------------------------------------------------- parent

const recipientOf = (i: number) => `1650555${String(i % RECIPIENTS).padStart(4, '0')}`;
const bodyOf = (i: number) => ({ type: 'text', text: { body: `bench reply ${i}` } });

/** Graph alone: the same bodies POSTed at the same concurrency, one recipient's sends never overlapping either. */
async function graphAlone(graphUrl: string): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < REPLIES; i = next++) {
        const res = await fetch(`${graphUrl}/v25.0/${PHONE_NUMBER_ID}/messages`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify({ ...bodyOf(i), messaging_product: 'whatsapp', to: recipientOf(i), biz_opaque_callback_data: `baseline-${i}` }),
        });
        await res.arrayBuffer();
      }
    }),
  );
  return REPLIES / ((performance.now() - started) / 1000);
}

async function writesByOperation(registry: Registry): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await registry.getSingleMetric(OUTBOUND_WRITES_METRIC)!.get()).values) {
    const op = String(v.labels.operation);
    out[op] = (out[op] ?? 0) + v.value;
  }
  return out;
}

async function main(): Promise<void> {
  const bound = setTimeout(() => {
    process.stderr.write(`bench:outbound did not finish within ${BOUND_MS / 1000} s\n`);
    process.exit(1);
  }, BOUND_MS);
  bound.unref();
  const child = fork(__filename, ['standins'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const info = await nextMessage<StandInInfo>(child, 'ready');
  const env = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    SQS_QUEUE_URL: info.queueUrl,
    SQS_DLQ_URL: info.dlqUrl,
    SQS_OUTBOUND_QUEUE_URL: info.outboundQueueUrl,
    SQS_OUTBOUND_DLQ_URL: info.outboundDlqUrl,
    S3_BUCKET: 'wa-ingress-bench',
    GRAPH_API_BASE_URL: info.graphUrl,
    MEDIA_ALLOWED_HOSTS: new URL(info.graphUrl).hostname,
    WHATSAPP_ACCESS_TOKEN: TOKEN,
    OUTBOUND_CONCURRENCY: String(CONCURRENCY),
    SQS_WAIT_TIME_SECONDS: '1',
    SQS_VISIBILITY_TIMEOUT_SECONDS: '60',
  };
  const loaded = loadConfig(env);
  const config = { ...loaded, aws: { ...loaded.aws, endpoints: info.endpoints, forcePathStyle: true, credentials: info.credentials } };
  const clients = createAwsClients(config.aws, 128);
  await ensureResources(clients, { linesTable: config.dynamodb.linesTable, dedupeTable: config.dynamodb.dedupeTable, bucket: config.s3.bucket, outboundTable: config.dynamodb.outboundTable });
  const lineStore = new DynamoLineStore({ documents: clients.documents, tableName: config.dynamodb.linesTable });
  // Rate 1000/s (Meta's ceiling): the bench measures the pipeline, not the default 80/s bucket.
  await lineStore.put(
    lineSchema.parse({ lineId: 'bench', phoneNumberId: PHONE_NUMBER_ID, wabaId: '1', displayPhoneNumber: '15550783881', sendRateLimit: 1000, bird: { transport: 'flow', flowUrl: 'http://127.0.0.1:9/unused', flowSecret: 'x' } }),
  );
  const registry = createRegistry({ defaultMetrics: false });
  const logger = createLogger({ level: 'warn' });
  const lines = new CachedLineRegistry({ store: lineStore, ttlMs: 60_000, registry });
  const secrets = new ReferenceSecretResolver({ production: false, cacheTtlMs: 60_000 });
  const store = new DynamoOutboundStore({ documents: clients.documents, itemUpdates: clients.itemUpdates, tableName: config.dynamodb.outboundTable, retentionDays: 1, registry });

  // 1. Baseline: Graph alone.
  const baseline = await graphAlone(info.graphUrl);
  await ask(child, { type: 'graph-reset' }, 'graph-reset-done');

  // 2. Accept every reply (records + FIFO jobs), then let the sender drain the queue.
  const acceptor = new QueueOutboundAcceptor({ store, sqs: clients.sqs, queueUrl: info.outboundQueueUrl, timeoutMs: 10_000, registry, logger });
  const ids: string[] = [];
  let next = 0;
  const acceptStarted = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < REPLIES; i = next++) {
        ids[i] = (await acceptor.accept({ lineId: 'bench', to: recipientOf(i), idempotencyKey: `bench-${i}`, body: bodyOf(i), source: 'api' })).id;
      }
    }),
  );
  const acceptsPerSecond = REPLIES / ((performance.now() - acceptStarted) / 1000);
  const acceptWrites = await writesByOperation(registry);

  const bird = createBirdClient({ logger, registry, timeoutMs: 1000 });
  const senderStarted = performance.now();
  const sender = startSender({ config, clients, lines, secrets, store, bird, registry, logger });
  const sentMetric = async () => {
    const values = (await registry.getSingleMetric('wa_ingress_outbound_sends_total')!.get()).values;
    return values.filter((v) => v.labels.outcome === 'accepted').reduce((s, v) => s + v.value, 0);
  };
  while ((await sentMetric()) < REPLIES) await sleep(20);
  const sendSeconds = (performance.now() - senderStarted) / 1000;
  await sender.stop();
  // Where a send's time goes: the handler's mean (claim + Graph + SENT, and the wait behind the recipient's previous reply).
  const handler = (await registry.getSingleMetric('wa_ingress_outbound_sender_handler_duration_seconds')!.get()).values as Array<{ value: number; metricName?: string }>;
  const handlerMs = ((handler.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0) / Math.max(1, handler.find((v) => v.metricName?.endsWith('_count'))?.value ?? 1)) * 1000;
  const stats = await ask<GraphStats>(child, { type: 'graph-stats' }, 'graph-stats');
  const writes = await writesByOperation(registry);
  const sqsCalls: Record<string, number> = {};
  for (const v of (await registry.getSingleMetric('wa_ingress_sqs_calls_total')!.get()).values) sqsCalls[String(v.labels.operation)] = v.value;
  const totalWrites = Object.values(writes).reduce((a, b) => a + b, 0);
  const sample = await Promise.all(ids.slice(0, 50).map((id) => store.get(id)));

  const pipeline = REPLIES / sendSeconds;

  // 3. DynamoDB alone: the sender's two conditional writes (claim, sent) on as many records, same concurrency.
  const dynamoIds: string[] = [];
  for (let i = 0; i < REPLIES; i++) {
    const id = `ob_dynamo${String(i).padStart(27, '0')}`;
    dynamoIds.push(id);
  }
  next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < REPLIES; i = next++) {
        await store.create({ id: dynamoIds[i]!, lineId: 'bench', idempotencyKey: `dynamo-${i}`, to: recipientOf(i), bodyHash: 'x', body: { type: 'text', text: { body: 'bench' } }, type: 'text', source: 'api' });
      }
    }),
  );
  next = 0;
  const dynamoStarted = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < REPLIES; i = next++) {
        const claim = await store.claim(dynamoIds[i]!, 60_000);
        if (claim.claimed) await store.markSent(fenceOf(claim), `wamid.dynamo${i}`);
      }
    }),
  );
  const dynamoAlone = REPLIES / ((performance.now() - dynamoStarted) / 1000);
  const f = (n: number, d = 1) => n.toFixed(d);
  const lines_ = [
    `bench:outbound — ${REPLIES} text replies to ${RECIPIENTS} recipients, one line at 1000/s, sender concurrency ${CONCURRENCY}`,
    `  Graph stand-in alone (same bodies, same concurrency):  ${f(baseline)} sends/s`,
    `  accept (record put + FIFO SendMessage):                 ${f(acceptsPerSecond)} replies/s`,
    `  sender (queue → claim → Graph → SENT):                  ${f(pipeline)} sends/s  = ${f(pipeline / baseline, 2)} × Graph alone`,
    `  DynamoDB alone (claim + sent per reply, same conc.):    ${f(dynamoAlone)} replies/s; the sender = ${f(pipeline / dynamoAlone, 2)} × that`,
    `  sender handler time, mean:                              ${f(handlerMs)} ms per reply`,
    `  Graph calls per reply:                                  ${f(stats.calls / REPLIES, 2)} (${stats.accepted} accepted, ${stats.distinctIds} distinct biz_opaque_callback_data)`,
    `  DynamoDB writes per reply:                              ${f(totalWrites / REPLIES, 2)} (${Object.entries(writes).map(([op, n]) => `${op} ${f(n / REPLIES, 2)}`).join(', ')}); each status webhook adds 1`,
    `  SQS calls per reply:                                    ${Object.entries(sqsCalls).map(([op, n]) => `${op} ${f(n / REPLIES, 2)}`).join(', ')}`,
    `  accept writes per reply:                                ${f((acceptWrites.create ?? 0) / REPLIES, 2)}; records sampled SENT: ${sample.filter((r) => r?.status === 'sent').length}/${sample.length}`,
  ];
  process.stdout.write(`${lines_.join('\n')}\n`);
  clients.destroy();
  child.disconnect();
  process.exitCode = stats.calls === REPLIES && stats.distinctIds === REPLIES ? 0 : 1;
}

if (process.argv[2] === 'standins') void serveStandIns();
else
  main().catch((error) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  });
