import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ArchiveObjects } from '../archive/archive-objects';
import { formatCursor, parseCursor, type ArchiveCursor } from '../archive/archive-range';
import { ArchiveReplay, type ReplayCounts } from '../archive/replay';
import { createAwsClients } from '../aws/clients';
import { loadConfig } from '../config/config';
import { embeddedAwsSettings, localSecrets, readEmbeddedState } from '../config/embedded-state';
import { ConfigError } from '../errors';
import { SqsBatchProducer } from '../ingress/producer';
import { CachedLineRegistry } from '../lines/registry';
import { ReferenceSecretResolver } from '../lines/secrets';
import { DynamoLineStore } from '../lines/store';
import { createLogger } from '../observability/logger';
import { createRegistry } from '../observability/metrics';
import { S3ClaimCheckWriter } from '../queue/claim-check-writer';
import { processIo, type CliIo } from './io';

const USAGE = `Usage: npm run replay -- --from <ISO> --to <ISO> [--line <lineId>] [--dry-run] [--checkpoint <file> | --after <cursor>]
  Reads the archive of signed webhook POSTs received in [from, to], verifies each signature again
  (a record that does not verify is counted and skipped, never sent), and puts the payloads back on
  the inbound queue in their FIFO groups, in receive order. Events that already completed are
  no-ops for the worker (dedupe), so a replay delivers only what never completed.
  --line <lineId>      only that line's payloads
  --dry-run            read and verify, send nothing
  --checkpoint <file>  resume from the file's cursor when it exists; the cursor is written there after each page
  --after <cursor>     resume after a cursor printed by an earlier run
Needs SQS_QUEUE_URL, S3_BUCKET, WHATSAPP_APP_SECRETS (and the AWS credentials of the deployment);
without SQS_QUEUE_URL it works on the running embedded default (npm start).`;

interface ReplayArgs {
  from: Date;
  to: Date;
  lineId?: string;
  dryRun: boolean;
  checkpoint?: string;
  after?: ArchiveCursor;
}

export function parseReplayArgs(argv: string[]): ReplayArgs | string {
  const value = (name: string) => {
    const at = argv.indexOf(name);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const from = new Date(value('--from') ?? 'x');
  const to = new Date(value('--to') ?? 'x');
  if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) return '--from and --to are required, as ISO times (e.g. 2026-05-01T10:00:00Z).';
  if (from > to) return '--from must not be after --to.';
  const afterText = value('--after');
  const after = afterText === undefined ? undefined : parseCursor(afterText);
  if (afterText !== undefined && !after) return `--after takes a cursor printed by an earlier run (got ${afterText}).`;
  return { from, to, lineId: value('--line'), dryRun: argv.includes('--dry-run'), checkpoint: value('--checkpoint'), after };
}

/** Returns the exit code: 0 done, 1 the replay failed, 2 bad usage or configuration. */
export async function runReplayCli(argv: string[], io: CliIo = processIo, tty = process.stderr.isTTY === true): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h') || argv.length === 0) {
    io.out(USAGE);
    return argv.length === 0 ? 2 : 0;
  }
  const args = parseReplayArgs(argv);
  if (typeof args === 'string') {
    io.err(`${args}\n${USAGE}`);
    return 2;
  }
  let config;
  let queueUrl: string | undefined;
  let appSecrets: string[];
  try {
    config = loadConfig(io.env);
    queueUrl = config.sqs.queueUrl;
    appSecrets = config.whatsapp.appSecrets;
    if (config.embedded) {
      const dataDir = resolve(config.dataDir);
      queueUrl = readEmbeddedState(dataDir).queueUrl;
      config = { ...config, aws: embeddedAwsSettings(config) };
      if (appSecrets.length === 0) appSecrets = [localSecrets(dataDir).appSecret];
    }
  } catch (error) {
    io.err(error instanceof ConfigError ? error.message : String(error));
    return 2;
  }
  if (!queueUrl) {
    io.err('SQS_QUEUE_URL not set.');
    return 2;
  }
  const after = args.after ?? (args.checkpoint && existsSync(args.checkpoint) ? parseCursor(readFileSync(args.checkpoint, 'utf8').trim()) : undefined);
  if (after) io.out(`resuming after ${formatCursor(after)}`);

  const clients = createAwsClients(config.aws);
  const logger = createLogger({ level: 'warn' });
  const registry = createRegistry({ defaultMetrics: false });
  const queue = new SqsBatchProducer({
    sqs: clients.sqs,
    queueUrl,
    claimCheck: new S3ClaimCheckWriter({ s3: clients.s3, bucket: config.s3.bucket }),
    batchWindowMs: 5,
    timeoutMs: 30_000,
    claimCheckThresholdBytes: config.sqs.claimCheckThresholdBytes,
    logger,
  });
  const lineStore = new DynamoLineStore({ documents: clients.documents, tableName: config.dynamodb.linesTable });
  const lines = new CachedLineRegistry({ store: lineStore, ttlMs: 300_000, registry });
  const secrets = new ReferenceSecretResolver({ production: config.production, secretsManager: clients.secrets, cacheTtlMs: 300_000 });
  let cursor: ArchiveCursor | undefined = after;
  const started = Date.now();
  const replay = new ArchiveReplay({
    objects: new ArchiveObjects({ s3: clients.s3, bucket: config.s3.bucket }),
    queue,
    lines,
    secrets,
    appSecrets,
    onPage: (counts, last) => {
      cursor = last;
      if (args.checkpoint && !args.dryRun) writeFileSync(args.checkpoint, `${formatCursor(last)}\n`);
      if (tty) process.stderr.write(`\r${progress(counts, started)} at ${last.receivedAt}   `);
    },
  });
  try {
    const counts = await replay.run({ from: args.from, to: args.to, lineId: args.lineId, dryRun: args.dryRun, after });
    if (tty) process.stderr.write('\n');
    io.out(summary(counts, started, args.dryRun));
    return 0;
  } catch (error) {
    if (tty) process.stderr.write('\n');
    io.err(`replay failed: ${(error as Error).message}`);
    if (cursor) io.err(`everything up to ${formatCursor(cursor)} was enqueued; resume with --after '${formatCursor(cursor)}'${args.checkpoint ? ` (or the same --checkpoint)` : ''}`);
    return 1;
  } finally {
    clients.destroy();
  }
}

function progress(counts: ReplayCounts, started: number): string {
  const seconds = Math.max(0.001, (Date.now() - started) / 1000);
  return `read ${counts.read}, verified ${counts.verified}, enqueued ${counts.enqueued} (${Math.round(counts.enqueued / seconds)}/s)`;
}

export function summary(counts: ReplayCounts, started: number, dryRun: boolean): string {
  const skipped = Object.entries(counts.skipped);
  const total = skipped.reduce((n, [, c]) => n + (c ?? 0), 0);
  return [
    `read:     ${counts.read}`,
    `verified: ${counts.verified}`,
    `enqueued: ${counts.enqueued}${dryRun ? ' (dry run: nothing sent)' : ''}`,
    `skipped:  ${total}${skipped.map(([reason, c]) => `\n  ${reason}: ${c}`).join('')}`,
    `rate:     ${(counts.enqueued / Math.max(0.001, (Date.now() - started) / 1000)).toFixed(0)} payloads/s`,
  ].join('\n');
}

if (require.main === module) {
  runReplayCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error) => {
      process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
