import { z } from 'zod';
import { ConfigError } from '../errors';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const csv = z.string().transform((v) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0),
);
const optionalUrl = z.string().url().optional();

const MEBIBYTE = 1024 * 1024;

/** Meta's CDN hosts for media downloads; the line's token is sent to no other host. */
export const DEFAULT_MEDIA_ALLOWED_HOSTS = ['lookaside.fbsbx.com', '*.fbcdn.net', '*.whatsapp.net', 'graph.facebook.com'];

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: int(0, 65535).default(8080),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DATA_DIR: z.string().min(1).default('.data'),

  WHATSAPP_VERIFY_TOKEN: z.string().min(1).optional(),
  WHATSAPP_APP_SECRETS: csv.optional(),
  WHATSAPP_ACCESS_TOKEN: z.string().min(1).optional(),

  SQS_QUEUE_URL: z.string().url().optional(),
  SQS_DLQ_URL: z.string().url().optional(),
  SQS_TURN_QUEUE_URL: z.string().url().optional(),
  S3_BUCKET: z.string().min(3).optional(),
  DYNAMODB_LINES_TABLE: z.string().min(3).default('wa-ingress-lines'),
  DYNAMODB_DEDUPE_TABLE: z.string().min(3).default('wa-ingress-dedupe'),
  DYNAMODB_OUTBOUND_TABLE: z.string().min(3).default('wa-ingress-outbound'),
  DYNAMODB_ERASURES_TABLE: z.string().min(3).default('wa-ingress-erasures'),
  DYNAMODB_CONTACTS_TABLE: z.string().min(3).default('wa-ingress-contacts'),
  /** How long a worker trusts the contact state it last read or wrote before reading it again. */
  CONTACT_STATE_CACHE_MS: z.coerce.number().int().min(0).max(60_000).default(5000),
  SQS_OUTBOUND_QUEUE_URL: z.string().url().optional(),
  SQS_OUTBOUND_DLQ_URL: z.string().url().optional(),
  AWS_REGION: z.string().min(1).default('us-east-1'),
  S3_FORCE_PATH_STYLE: bool.optional(),
  AWS_ENDPOINT_URL: optionalUrl,
  AWS_ENDPOINT_URL_SQS: optionalUrl,
  AWS_ENDPOINT_URL_S3: optionalUrl,
  AWS_ENDPOINT_URL_DYNAMODB: optionalUrl,
  CREATE_MISSING_RESOURCES: bool.optional(),
  LINES_FILE: z.string().min(1).optional(),

  // Ingress tuning.
  MAX_BODY_BYTES: int(1024, 10 * MEBIBYTE).default(3 * MEBIBYTE),
  SQS_SEND_TIMEOUT_MS: int(100, 60_000).default(3000),
  BATCH_WINDOW_MS: int(0, 100).default(2),
  // Statuses of our replies the line does not forward: settled by the ingress itself, no SQS message.
  INGRESS_SETTLES_STATUSES: bool.default('true'),
  CLAIM_CHECK_THRESHOLD_BYTES: int(1024, 1024 * 1024 - 64 * 1024).default(900 * 1024),
  // Past the 20 s long poll: a receive out at SIGTERM returns by itself and its messages are handed back (infra's stopTimeout is 5 s more).
  SHUTDOWN_TIMEOUT_MS: int(2000, 115_000).default(25_000),
  LINE_CACHE_TTL_MS: int(0, 3_600_000).default(30_000),
  SECRET_CACHE_TTL_MS: int(0, 86_400_000).default(300_000),
  /** How far a Bird webhook's messagebird-request-timestamp may be from now (5 minutes, as Bird's webhooks are checked by default). */
  BIRD_WEBHOOK_MAX_SKEW_SECONDS: int(30, 86_400).default(300),
  /** The scheme and host Bird (and Meta) call, e.g. https://wa.example.com: Bird signs this URL. */
  PUBLIC_BASE_URL: z
    .string()
    .url()
    .refine((v) => /^https?:\/\//.test(v), 'must be an http(s) URL')
    .transform((v) => v.replace(/\/+$/, ''))
    .optional(),

  // Worker tuning.
  WORKER_CONCURRENCY: int(1, 1024).default(32),
  SQS_WAIT_TIME_SECONDS: int(0, 20).default(20),
  // The gather window at low rates: after a short receive, the next one waits this long so arrivals share it.
  SQS_RECEIVE_LINGER_MS: int(0, 1000).default(10),
  // Short, so a crashed worker's messages and leases come back in seconds; the heartbeat extends it while work runs.
  SQS_VISIBILITY_TIMEOUT_SECONDS: int(5, 43_200).default(30),
  // More than the DLQ's 14 days of retention: a late redrive must still find its payload's records.
  DEDUPE_TTL_DAYS: int(15, 365).default(15),
  GRAPH_API_BASE_URL: z.string().url().default('https://graph.facebook.com'),
  GRAPH_API_VERSION: z.string().regex(/^v\d+\.\d+$/, 'like v25.0').default('v25.0'),
  MEDIA_ALLOWED_HOSTS: csv.optional(),
  MEDIA_URL_TTL_SECONDS: int(60, 7 * 86_400).default(86_400),
  BIRD_TIMEOUT_MS: int(100, 120_000).default(15_000),
  BIRD_API_BASE_URL: z.string().url().default('https://api.bird.com'),

  // Outbound (replies).
  OUTBOUND_CONCURRENCY: int(1, 1024).default(32),
  OUTBOUND_UNCERTAIN_GRACE_MS: int(1000, 3_600_000).default(30_000),
  // Each ambiguous send that is resent may reach the person twice: past this many, an operator decides.
  OUTBOUND_MAX_AMBIGUOUS_RESENDS: int(0, 5).default(1),
  OUTBOUND_SEND_TIMEOUT_MS: int(500, 120_000).default(15_000),
  // At least the DLQ's 14 days: a parked reply's record (and its journey) must outlive the parked job.
  OUTBOUND_RETENTION_DAYS: int(14, 365).default(30),
  // The outbox: a reply written but not claimed for this long is enqueued again (its job may never have reached the queue).
  OUTBOUND_OUTBOX_AGE_MS: int(500, 3_600_000).default(30_000),
  OUTBOUND_OUTBOX_SWEEP_MS: int(100, 600_000).default(10_000),
  // Media objects (S3 media/): infra's lifecycle rule, and a sweep on the embedded default (s3rver has no lifecycle).
  MEDIA_RETENTION_DAYS: int(1, 3650).default(30),

  // The archive of signed originals (src/archive): written by the ingress, read by `npm run replay`.
  ARCHIVE_FLUSH_MS: int(50, 60_000).default(1000),
  ARCHIVE_RETENTION_DAYS: int(1, 3650).default(30),
  // Records held while S3 fails before new ones are dropped (counted, logged): bounds the ingress's memory.
  ARCHIVE_BUFFER_BYTES: int(MEBIBYTE, 1024 * MEBIBYTE).default(64 * MEBIBYTE),

  // The Meta watcher (src/watch): one process per deployment checks each line on Meta's side.
  /** Seconds between rounds; 0 turns the watcher off (stored problems are still shown). */
  META_WATCH_INTERVAL_SECONDS: int(0, 86_400).default(600),
  /** The watcher lease: a standby takes over this long after the holder stops renewing. */
  META_WATCH_LEASE_SECONDS: int(3, 3600).default(60),
  /** This app's id: subscribed_apps must list it. Unset: that check is skipped. */
  WHATSAPP_APP_ID: z.string().regex(/^[0-9]{1,32}$/, 'the numeric Meta app id').optional(),

  // Operator console (src/console): its own port, off unless a token is set.
  CONSOLE_PORT: int(0, 65535).default(8081),
  CONSOLE_TOKEN: z.string().min(16, 'at least 16 characters').optional(),
  CONSOLE_SESSION_HOURS: int(1, 168).default(12),
});

export type Env = z.infer<typeof envSchema>;

export interface AwsSettings {
  region: string;
  endpoints: { sqs?: string; s3?: string; dynamodb?: string };
  forcePathStyle: boolean;
  /** Only set for the embedded stand-ins; production uses the SDK's default credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Only set for the embedded default's durable queue: the visibility a release (VisibilityTimeout 0) gets instead (see src/aws/clients.ts). */
  releaseVisibilitySeconds?: number;
}

export interface Config {
  env: Env;
  /** No SQS_QUEUE_URL: start local stand-ins in-process (`npm start`). */
  embedded: boolean;
  production: boolean;
  port: number;
  logLevel: Env['LOG_LEVEL'];
  dataDir: string;
  whatsapp: { verifyToken?: string; appSecrets: string[]; accessToken?: string };
  sqs: { queueUrl?: string; dlqUrl?: string; turnQueueUrl?: string; sendTimeoutMs: number; batchWindowMs: number; claimCheckThresholdBytes: number };
  s3: { bucket: string; mediaRetentionDays: number };
  dynamodb: { linesTable: string; dedupeTable: string; outboundTable: string; erasuresTable: string; contactsTable: string };
  contactState: { cacheMs: number };
  aws: AwsSettings;
  createMissingResources: boolean;
  linesFile?: string;
  ingress: { maxBodyBytes: number; settlesStatuses: boolean; shutdownTimeoutMs: number; lineCacheTtlMs: number; secretCacheTtlMs: number; publicBaseUrl?: string; birdWebhookMaxSkewMs: number };
  archive: { flushMs: number; retentionDays: number; bufferBytes: number };
  /** The Meta watcher: `intervalMs` 0 is off; `appId` absent skips the subscription check. */
  watch: { intervalMs: number; leaseMs: number; appId?: string };
  /** Absent token: the console is off (the embedded default generates one). */
  console: { port: number; token?: string; sessionHours: number };
  worker: {
    concurrency: number;
    waitTimeSeconds: number;
    /** After a receive that came back short, the next waits this long (the poller's receiveLingerMs). */
    receiveLingerMs: number;
    visibilityTimeoutSeconds: number;
    dedupeTtlDays: number;
    graphApiBaseUrl: string;
    graphApiVersion: string;
    mediaAllowedHosts: string[];
    mediaUrlTtlSeconds: number;
    birdTimeoutMs: number;
    birdApiBaseUrl: string;
  };
  outbound: {
    /** Unset: no send API and no sender (the embedded default always has one). */
    queueUrl?: string;
    dlqUrl?: string;
    concurrency: number;
    uncertainGraceMs: number;
    /** Resends of an ambiguous send before the reply is parked `send_uncertain` for an operator. */
    maxAmbiguousResends: number;
    sendTimeoutMs: number;
    retentionDays: number;
    /** The outbox sweeper (worker role): pending past `ageMs`, enqueued again; a sweep every `sweepMs`. */
    outbox: { ageMs: number; sweepMs: number };
  };
}

export type Role = 'ingress' | 'worker' | 'all';

/** What the worker's drain needs beyond one long poll: the poller's hand-back and flush reserve, and main's exit. */
export const SHUTDOWN_MARGIN_MS = 3000;

/**
 * What a serving process needs beyond the parsed variables, checked at start (the CLIs need less:
 * `npm run dlq` works with just the queue URLs).
 */
export function assertServable(config: Config, role: Role): void {
  const receiveMs = config.worker.waitTimeSeconds * 1000;
  if (role !== 'ingress' && config.ingress.shutdownTimeoutMs < receiveMs + SHUTDOWN_MARGIN_MS) {
    // A receive still out at SIGTERM must be let to return (aborting it hides what it took until the
    // visibility lapses), so the drain must outlast one long poll, with room to hand back and flush.
    throw new ConfigError(
      `Invalid configuration:\n  SHUTDOWN_TIMEOUT_MS: must be at least SQS_WAIT_TIME_SECONDS × 1000 + ${SHUTDOWN_MARGIN_MS} (${receiveMs + SHUTDOWN_MARGIN_MS}) for the ${role} role; got ${config.ingress.shutdownTimeoutMs}`,
    );
  }
  if (config.embedded) return;
  const needs: Array<[string, boolean]> = [
    ['S3_BUCKET', config.env.S3_BUCKET !== undefined],
    ['WHATSAPP_VERIFY_TOKEN', role === 'worker' || config.whatsapp.verifyToken !== undefined],
    ['WHATSAPP_APP_SECRETS', role === 'worker' || config.whatsapp.appSecrets.length > 0],
    ['SQS_DLQ_URL', role === 'ingress' || config.sqs.dlqUrl !== undefined],
    // The sender parks permanent failures there; the send API needs only the queue.
    ['SQS_OUTBOUND_DLQ_URL', role === 'ingress' || config.outbound.queueUrl === undefined || config.outbound.dlqUrl !== undefined],
  ];
  const missing = needs.filter(([, ok]) => !ok).map(([name]) => name);
  if (missing.length > 0) {
    throw new ConfigError(`Invalid configuration:\n  ${missing.map((k) => `${k}: required for the ${role} role when SQS_QUEUE_URL is set`).join('\n  ')}`);
  }
}

/** Parse and validate the environment once; bad configuration fails here, naming the variable. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const defined = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(defined);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const env = parsed.data;
  const embedded = env.SQS_QUEUE_URL === undefined;
  const production = env.NODE_ENV === 'production';

  if (production && !env.GRAPH_API_BASE_URL.startsWith('https://')) {
    throw new ConfigError('GRAPH_API_BASE_URL: must be https when NODE_ENV=production (the Graph token travels with every call)');
  }
  if (production && !env.BIRD_API_BASE_URL.startsWith('https://')) {
    throw new ConfigError('BIRD_API_BASE_URL: must be https when NODE_ENV=production (every line\'s Bird access key travels with its calls)');
  }
  if (production && embedded) {
    throw new ConfigError('SQS_QUEUE_URL: required when NODE_ENV=production (the embedded stand-ins are for development only)');
  }
  return {
    env,
    embedded,
    production,
    port: env.PORT,
    logLevel: env.LOG_LEVEL,
    dataDir: env.DATA_DIR,
    whatsapp: {
      verifyToken: env.WHATSAPP_VERIFY_TOKEN,
      appSecrets: env.WHATSAPP_APP_SECRETS ?? [],
      accessToken: env.WHATSAPP_ACCESS_TOKEN,
    },
    sqs: {
      queueUrl: env.SQS_QUEUE_URL,
      dlqUrl: env.SQS_DLQ_URL,
      turnQueueUrl: env.SQS_TURN_QUEUE_URL,
      sendTimeoutMs: env.SQS_SEND_TIMEOUT_MS,
      batchWindowMs: env.BATCH_WINDOW_MS,
      claimCheckThresholdBytes: env.CLAIM_CHECK_THRESHOLD_BYTES,
    },
    s3: { bucket: env.S3_BUCKET ?? 'wa-ingress-local', mediaRetentionDays: env.MEDIA_RETENTION_DAYS },
    dynamodb: {
      linesTable: env.DYNAMODB_LINES_TABLE,
      dedupeTable: env.DYNAMODB_DEDUPE_TABLE,
      outboundTable: env.DYNAMODB_OUTBOUND_TABLE,
      erasuresTable: env.DYNAMODB_ERASURES_TABLE,
      contactsTable: env.DYNAMODB_CONTACTS_TABLE,
    },
    contactState: { cacheMs: env.CONTACT_STATE_CACHE_MS },
    aws: {
      region: env.AWS_REGION,
      endpoints: {
        sqs: env.AWS_ENDPOINT_URL_SQS ?? env.AWS_ENDPOINT_URL,
        s3: env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL,
        dynamodb: env.AWS_ENDPOINT_URL_DYNAMODB ?? env.AWS_ENDPOINT_URL,
      },
      forcePathStyle: env.S3_FORCE_PATH_STYLE ?? false,
    },
    createMissingResources: env.CREATE_MISSING_RESOURCES ?? embedded,
    linesFile: env.LINES_FILE,
    ingress: {
      maxBodyBytes: env.MAX_BODY_BYTES,
      settlesStatuses: env.INGRESS_SETTLES_STATUSES,
      shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
      lineCacheTtlMs: env.LINE_CACHE_TTL_MS,
      secretCacheTtlMs: env.SECRET_CACHE_TTL_MS,
      publicBaseUrl: env.PUBLIC_BASE_URL,
      birdWebhookMaxSkewMs: env.BIRD_WEBHOOK_MAX_SKEW_SECONDS * 1000,
    },
    archive: { flushMs: env.ARCHIVE_FLUSH_MS, retentionDays: env.ARCHIVE_RETENTION_DAYS, bufferBytes: env.ARCHIVE_BUFFER_BYTES },
    watch: { intervalMs: env.META_WATCH_INTERVAL_SECONDS * 1000, leaseMs: env.META_WATCH_LEASE_SECONDS * 1000, appId: env.WHATSAPP_APP_ID },
    console: { port: env.CONSOLE_PORT, token: env.CONSOLE_TOKEN, sessionHours: env.CONSOLE_SESSION_HOURS },
    worker: {
      concurrency: env.WORKER_CONCURRENCY,
      // local-aws-sqs answers concurrent long polls only when their wait ends: keep the wait short locally.
      waitTimeSeconds: embedded && defined.SQS_WAIT_TIME_SECONDS === undefined ? 1 : env.SQS_WAIT_TIME_SECONDS,
      receiveLingerMs: env.SQS_RECEIVE_LINGER_MS,
      visibilityTimeoutSeconds: env.SQS_VISIBILITY_TIMEOUT_SECONDS,
      dedupeTtlDays: env.DEDUPE_TTL_DAYS,
      graphApiBaseUrl: env.GRAPH_API_BASE_URL,
      graphApiVersion: env.GRAPH_API_VERSION,
      mediaAllowedHosts: env.MEDIA_ALLOWED_HOSTS ?? DEFAULT_MEDIA_ALLOWED_HOSTS,
      mediaUrlTtlSeconds: env.MEDIA_URL_TTL_SECONDS,
      birdTimeoutMs: env.BIRD_TIMEOUT_MS,
      birdApiBaseUrl: env.BIRD_API_BASE_URL,
    },
    outbound: {
      queueUrl: env.SQS_OUTBOUND_QUEUE_URL,
      dlqUrl: env.SQS_OUTBOUND_DLQ_URL,
      concurrency: env.OUTBOUND_CONCURRENCY,
      uncertainGraceMs: env.OUTBOUND_UNCERTAIN_GRACE_MS,
      maxAmbiguousResends: env.OUTBOUND_MAX_AMBIGUOUS_RESENDS,
      sendTimeoutMs: env.OUTBOUND_SEND_TIMEOUT_MS,
      retentionDays: env.OUTBOUND_RETENTION_DAYS,
      outbox: { ageMs: env.OUTBOUND_OUTBOX_AGE_MS, sweepMs: env.OUTBOUND_OUTBOX_SWEEP_MS },
    },
  };
}
