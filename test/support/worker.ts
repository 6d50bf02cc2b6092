import { HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { DeleteCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { BirdBreakerOptions, BirdRetryOptions } from '../../src/bird';
import { loadConfig, type Config } from '../../src/config/config';
import { sign } from '../../src/ingress/signature';
import type { LineInput } from '../../src/lines/line';
import { CachedLineRegistry } from '../../src/lines/registry';
import { ReferenceSecretResolver } from '../../src/lines/secrets';
import { DynamoLineStore } from '../../src/lines/store';
import { BIRD_STANDIN_FLOW_SECRET, BIRD_STANDIN_FLOW_SIGNING_SECRET, startBirdStandIn, type BirdStandIn, type ReceivedCall } from '../../src/local/bird-standin';
import { startGraphStandIn, type GraphStandIn } from '../../src/local/graph-standin';
import { createRegistry, type Registry } from '../../src/observability/metrics';
import type { JournalBus } from '../../src/journal/journal-bus';
import { startWorker } from '../../src/worker';
import { DeadLetterQueue, type DlqEntry } from '../../src/queue/dlq';
import { startAwsHarness, type AwsHarness } from './aws';
import type { AwsStandInOptions } from '../../src/local/aws-standins';
import { productionLikeEnv, waitFor } from './child';
import { APP_SECRET, startIngressHarness, type IngressHarness } from './ingress';
import { capturedLogger } from './logs';

/** The only bearer the Graph stand-in accepts: the lines carry it as their access token. */
export const GRAPH_TOKEN = 'graph-token-under-test';

/** The phone_number_ids the webhook fixtures use, each registered as a line. */
export const LINES = {
  doc: { lineId: 'line-doc', phoneNumberId: '106540352242922', wabaId: '102290129340398', displayPhoneNumber: '15550783881' },
  pywa: { lineId: 'line-pywa', phoneNumberId: '1122334455667', wabaId: '1234567890987654321', displayPhoneNumber: '15551234567' },
  third: { lineId: 'line-third', phoneNumberId: '102944729380254', wabaId: '114957184830690', displayPhoneNumber: '15550001111' },
} as const;

export type LineName = keyof typeof LINES;

/**
 * A line whose Bird target is the Bird stand-in's flow, with a literal secret (allowed outside production).
 * It forwards every status (`forwardStatuses: all`): the tests of delivery, order and parking follow
 * statuses to Bird; test/worker/status-forwarding.test.ts covers the default (`failed`) and `none`.
 */
export function lineFor(name: LineName | { lineId: string; phoneNumberId: string; wabaId: string; displayPhoneNumber: string }, birdFlowUrl: string): LineInput {
  const base = typeof name === 'string' ? LINES[name] : name;
  return { ...base, accessToken: GRAPH_TOKEN, forwardStatuses: 'all', bird: { transport: 'flow', flowUrl: birdFlowUrl, flowSecret: BIRD_STANDIN_FLOW_SECRET, flowSigningSecret: BIRD_STANDIN_FLOW_SIGNING_SECRET } };
}

/** Bird and Graph stand-ins on loopback, shared by a test file and reset between tests. */
export interface RemoteStandIns {
  bird: BirdStandIn;
  graph: GraphStandIn;
  reset(): void;
  stop(): Promise<void>;
}

export async function startRemoteStandIns(): Promise<RemoteStandIns> {
  const quiet = capturedLogger('warn').logger;
  const bird = await startBirdStandIn({ logger: quiet });
  const graph = await startGraphStandIn({ token: GRAPH_TOKEN, serveAnyMediaId: true });
  return {
    bird,
    graph,
    reset() {
      bird.reset();
      graph.clearRequests();
    },
    async stop() {
      await bird.stop();
      await graph.stop();
    },
  };
}

/**
 * The worker's Config as production would load it (loadConfig over an environment), pointed at the
 * harness: small waits so the tests stay fast. local-aws-sqs answers a long poll only when its wait
 * ends (or the batch is full), so the wait is 0: each receive then takes ~40 ms.
 */
export function workerConfig(aws: AwsHarness, graph: GraphStandIn, env: Record<string, string> = {}): Config {
  const config = loadConfig({
    NODE_ENV: 'test',
    WHATSAPP_VERIFY_TOKEN: 'verify-token-under-test',
    WHATSAPP_APP_SECRETS: APP_SECRET,
    SQS_QUEUE_URL: aws.standIns.queueUrl,
    SQS_DLQ_URL: aws.standIns.dlqUrl,
    SQS_TURN_QUEUE_URL: aws.standIns.turnQueueUrl,
    S3_BUCKET: aws.names.bucket,
    DYNAMODB_LINES_TABLE: aws.names.linesTable,
    DYNAMODB_DEDUPE_TABLE: aws.names.dedupeTable,
    DYNAMODB_CONTACTS_TABLE: aws.names.contactsTable,
    SQS_WAIT_TIME_SECONDS: '0',
    SQS_VISIBILITY_TIMEOUT_SECONDS: '5',
    WORKER_CONCURRENCY: '4',
    GRAPH_API_BASE_URL: graph.baseUrl,
    MEDIA_ALLOWED_HOSTS: graph.host,
    BIRD_TIMEOUT_MS: '3000',
    SHUTDOWN_TIMEOUT_MS: '3000',
    ...env,
  });
  return {
    ...config,
    aws: { region: 'us-east-1', endpoints: aws.standIns.endpoints, forcePathStyle: true, credentials: aws.standIns.credentials },
  };
}

/** The outbound part of a worker's environment, on the harness's FIFO queues and table. */
export function outboundEnv(aws: AwsHarness): Record<string, string> {
  return {
    SQS_OUTBOUND_QUEUE_URL: aws.standIns.outboundQueueUrl,
    SQS_OUTBOUND_DLQ_URL: aws.standIns.outboundDlqUrl,
    DYNAMODB_OUTBOUND_TABLE: aws.names.outboundTable,
    OUTBOUND_UNCERTAIN_GRACE_MS: '2000',
    OUTBOUND_SEND_TIMEOUT_MS: '2000',
    OUTBOUND_CONCURRENCY: '16',
  };
}

/**
 * `node dist/main.js all` on the harness with replies on, its Graph at the stand-in and the app
 * secret the test signs with; the short timings every process test of replies uses, then `extra`.
 */
export function gatewayEnv(aws: AwsHarness, gateway: { port: number; graph: Pick<GraphStandIn, 'baseUrl' | 'host'>; appSecret?: string }, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return productionLikeEnv(aws, {
    ...outboundEnv(aws),
    PORT: String(gateway.port),
    WHATSAPP_VERIFY_TOKEN: 'verify-token-under-test',
    WHATSAPP_APP_SECRETS: gateway.appSecret ?? APP_SECRET,
    GRAPH_API_BASE_URL: gateway.graph.baseUrl,
    MEDIA_ALLOWED_HOSTS: gateway.graph.host,
    SQS_WAIT_TIME_SECONDS: '0',
    SQS_VISIBILITY_TIMEOUT_SECONDS: '5',
    SHUTDOWN_TIMEOUT_MS: '3000',
    ...extra,
  });
}

export interface WorkerRigOptions {
  /** Extra worker environment for loadConfig. */
  env?: Record<string, string>;
  aws?: AwsStandInOptions;
  /** The worker's line cache; main.ts uses LINE_CACHE_TTL_MS and a negative TTL of at most 5 s. */
  lineCache?: { ttlMs: number; negativeTtlMs: number };
  /**
   * Assemble EventPipeline + SqsPoller by hand (as startWorker does) to set what the environment
   * does not reach: the Bird client's retries and breaker, the poller's retry backoff.
   */
  custom?: { bird?: { retry?: BirdRetryOptions; breaker?: BirdBreakerOptions }; retryBaseSeconds?: number; retryMaxSeconds?: number };
  lines?: LineInput[];
  /** The send API on the ingress, and the sender in the worker (outbound queue, table, short grace). */
  outbound?: boolean;
  /** The worker publishes its journey steps here (the console's live tail). */
  journalBus?: JournalBus;
}

/** A fresh AWS harness, a real ingress and a worker on it, wired to the shared Bird and Graph stand-ins. */
export interface WorkerRig {
  aws: AwsHarness;
  ingress: IngressHarness;
  config: Config;
  registry: Registry;
  logs: ReturnType<typeof capturedLogger>;
  lines: CachedLineRegistry;
  dlq: DeadLetterQueue;
  /** POST a body signed with the app secret, on the unified URL or a line's own. */
  post(body: string | Buffer, lineId?: string): Promise<number>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** Messages whose handler has returned, whatever the outcome. */
  handled(): Promise<number>;
  waitForHandled(count: number, timeoutMs?: number): Promise<void>;
  /** Messages on the main queue, visible or in flight. */
  queueDepth(queueUrl?: string): Promise<number>;
  /** S3 keys under a prefix. */
  objects(prefix: string): Promise<string[]>;
  headObject(key: string): Promise<{ found: true; sha256?: string; size?: number } | { found: false; status?: number }>;
  clearDedupe(): Promise<void>;
  stop(): Promise<void>;
}

export async function startWorkerRig(remote: RemoteStandIns, options: WorkerRigOptions = {}): Promise<WorkerRig> {
  const aws = await startAwsHarness(options.aws);
  const ingress = await startIngressHarness(aws, { outbound: options.outbound });
  await ingress.putLines(options.lines ?? (['doc', 'pywa', 'third'] as const).map((n) => lineFor(n, remote.bird.flowUrl())));
  const config = workerConfig(aws, remote.graph, { ...(options.outbound ? outboundEnv(aws) : {}), ...options.env });
  const registry = createRegistry({ defaultMetrics: false });
  const logs = capturedLogger('debug');
  const lines = new CachedLineRegistry({
    store: new DynamoLineStore({ documents: aws.clients.documents, tableName: config.dynamodb.linesTable }),
    ttlMs: options.lineCache?.ttlMs ?? config.ingress.lineCacheTtlMs,
    negativeTtlMs: options.lineCache?.negativeTtlMs,
    registry,
  });
  const secrets = new ReferenceSecretResolver({ production: false, cacheTtlMs: 0, env: {} });
  const deps = { config, clients: aws.clients, lines, secrets, registry, logger: logs.logger };
  const { custom } = options;
  const stopWorker = startWorker({
    ...deps,
    journalBus: options.journalBus,
    tuning: custom && { bird: custom.bird, poller: { retryBaseSeconds: custom.retryBaseSeconds, retryMaxSeconds: custom.retryMaxSeconds } },
  }).stop;
  const dlq = new DeadLetterQueue({ sqs: aws.clients.sqs, queueUrl: aws.standIns.queueUrl, dlqUrl: aws.standIns.dlqUrl, waitTimeSeconds: 0, holdSeconds: 5 });

  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const base = name.replace(/_(count|sum|bucket)$/, '');
    const values = (await registry.getSingleMetric(base)?.get())?.values ?? [];
    return values
      .filter((v) => ((v as { metricName?: string }).metricName ?? base) === name)
      .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
      .reduce((sum, v) => sum + v.value, 0);
  };
  const handled = () => metric('wa_ingress_worker_handler_duration_seconds_count');

  return {
    aws,
    ingress,
    config,
    registry,
    logs,
    lines,
    dlq,
    async post(body, lineId) {
      const res = await fetch(`${ingress.url}/webhooks/whatsapp${lineId ? `/${lineId}` : ''}`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(APP_SECRET, body) },
      });
      await res.arrayBuffer();
      return res.status;
    },
    metric,
    handled,
    async waitForHandled(count, timeoutMs = 10_000) {
      await waitFor(async () => (await handled()) >= count, timeoutMs, `${count} handled messages`);
    },
    queueDepth: (queueUrl) => queueDepth(aws, queueUrl),
    async objects(prefix) {
      const out = await aws.clients.s3.send(new ListObjectsV2Command({ Bucket: aws.names.bucket, Prefix: prefix }));
      return (out.Contents ?? []).map((o) => o.Key ?? '');
    },
    async headObject(key) {
      try {
        const head = await aws.clients.s3.send(new HeadObjectCommand({ Bucket: aws.names.bucket, Key: key }));
        return { found: true, sha256: head.Metadata?.sha256, size: head.ContentLength };
      } catch (error) {
        const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        if ((error as Error).name === 'NotFound' || status === 404) return { found: false, status };
        throw error;
      }
    },
    async clearDedupe() {
      const { documents } = aws.clients;
      const out = await documents.send(new ScanCommand({ TableName: config.dynamodb.dedupeTable, ProjectionExpression: 'pk' }));
      for (const item of out.Items ?? []) await documents.send(new DeleteCommand({ TableName: config.dynamodb.dedupeTable, Key: { pk: item.pk } }));
    },
    async stop() {
      await stopWorker();
      await ingress.stop();
      await aws.stop();
    },
  };
}

/** Messages on a queue (the main one unless told), visible or in flight: 0 once every message is deleted. */
export async function queueDepth(aws: AwsHarness, queueUrl = aws.standIns.queueUrl): Promise<number> {
  const out = await aws.clients.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
  );
  return Number(out.Attributes?.ApproximateNumberOfMessages ?? 0) + Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0);
}


/** The Bird stand-in's accepted calls as table rows: [kind, message type or status or field, Idempotency-Key]. */
export function birdRows(calls: ReceivedCall[]): [string, string, string][] {
  return calls.map((call) => {
    const body = call.body as { kind: string; field: string; message?: { type: string }; status?: { status: string } };
    return [body.kind, body.message?.type ?? body.status?.status ?? body.field, call.idempotencyKey];
  });
}

/** How many times Bird accepted each Idempotency-Key. */
export function countByKey(calls: ReceivedCall[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const call of calls) counts.set(call.idempotencyKey, (counts.get(call.idempotencyKey) ?? 0) + 1);
  return counts;
}

/** [reason, eventKey] of DLQ entries, sorted: what a test compares. */
export function parkedRows(entries: Pick<DlqEntry, 'reason' | 'eventKey'>[]): [string, string | undefined][] {
  return entries.map((e): [string, string | undefined] => [e.reason, e.eventKey]).sort((a, b) => `${a[0]}${a[1]}`.localeCompare(`${b[0]}${b[1]}`));
}

// ---- Meta payloads built for a test: the shape of the fixtures, with ids the test chooses ----

export const SENDER = '16505551234';

/**
 * Meta's timestamp of a message arriving now (whole seconds). A fixed old one would be a late Meta
 * retry: the person's window known closed, and the AI's free-form replies refused (reply policy).
 */
export function nowTimestamp(): string {
  return String(Math.floor(Date.now() / 1000));
}

export function textMessage(wamid: string, body = `text of ${wamid}`): Record<string, unknown> {
  return { from: SENDER, id: wamid, timestamp: nowTimestamp(), type: 'text', text: { body } };
}

export function mediaMessage(kind: 'image' | 'document', wamid: string, mediaId: string, mimeType: string): Record<string, unknown> {
  return { from: SENDER, id: wamid, timestamp: nowTimestamp(), type: kind, [kind]: { id: mediaId, mime_type: mimeType } };
}

/** `entries[i].changes[j]`: the line (by phone_number_id) and the messages of one `messages` change. */
export function webhookPayload(entries: { changes: { phoneNumberId: string; messages: Record<string, unknown>[] }[] }[]): string {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: entries.map((entry, i) => ({
      id: `waba-${i}`,
      changes: entry.changes.map((change) => ({
        field: 'messages',
        value: {
          messaging_product: 'whatsapp',
          metadata: { display_phone_number: '15550783881', phone_number_id: change.phoneNumberId },
          contacts: [{ profile: { name: 'Sheena Nelson' }, wa_id: SENDER }],
          messages: change.messages,
        },
      })),
    })),
  });
}
