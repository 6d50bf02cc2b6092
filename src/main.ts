import { createAwsClients, createProducerSqsClient } from './aws/clients';
import { ensureResources } from './aws/resources';
import { assertServable, loadConfig, type Config, type Role } from './config/config';
import { ConfigError } from './errors';
import { startConsoleFromConfig } from './console';
import { startIngress, type RunningIngress } from './ingress/server';
import { JournalBus } from './journal/journal-bus';
import { parseLines, readLinesFile, upsertLines } from './lines/admin';
import type { LineInput } from './lines/line';
import { startWorker } from './worker';
import { createOutboundRecords, createOutboundRoutes } from './outbound';
import { IngressStatusSettlement } from './ingress/status-settlement';
import { createContactStates } from './conversation';
import { startHealthServer } from './observability/health';
import { CachedLineRegistry } from './lines/registry';
import { ReferenceSecretResolver } from './lines/secrets';
import { DynamoLineStore } from './lines/store';
import { createLogger, type Logger } from './observability/logger';
import { ArchiveObjects } from './archive/archive-objects';
import { S3PayloadArchive } from './archive/archive-writer';
import { ArchiveRetentionSweep } from './archive/retention-sweep';
import { createRegistry } from './observability/metrics';
import { MediaRetentionSweep } from './media/media-retention-sweep';
import { createErasureRouter, createErasures } from './privacy/erasure';
import { startWatch } from './watch';

const ROLES: readonly Role[] = ['ingress', 'worker', 'all'];

async function run(role: Role, baseConfig: Config, logger: Logger): Promise<() => Promise<void>> {
  // On SIGTERM the drains run together (ingress and worker share one bound), then the teardown.
  const drains: Array<() => Promise<void>> = [];
  const teardown: Array<() => Promise<void>> = [];
  let config = baseConfig;
  let publish: ((gatewayUrl: string) => void) | undefined;
  let banner: ((webhookUrl: string, consoleUrl?: string) => string) | undefined;
  let defaultLines: LineInput[] = [];
  if (config.embedded) {
    // The SDK's notice that it will need Node 22 from 2027 is for deployments (the image runs 22), not for a local run.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    // Loaded lazily: the stand-ins are devDependencies and never ship in the production image.
    const { startEmbeddedDefault } = await import('./local/embedded');
    const embedded = await startEmbeddedDefault(config, logger);
    config = embedded.config;
    publish = (url) => embedded.publish(url);
    banner = (url, consoleUrl) => embedded.banner(url, consoleUrl);
    defaultLines = embedded.demoLines;
    teardown.push(() => embedded.stop());
  }

  const clients = createAwsClients(config.aws, Math.max(64, config.worker.concurrency * 2));
  teardown.unshift(async () => clients.destroy());
  if (config.createMissingResources) {
    const created = await ensureResources(clients, {
      linesTable: config.dynamodb.linesTable,
      dedupeTable: config.dynamodb.dedupeTable,
      bucket: config.s3.bucket,
      outboundTable: config.outbound.queueUrl ? config.dynamodb.outboundTable : undefined,
      erasuresTable: config.dynamodb.erasuresTable,
      contactsTable: config.dynamodb.contactsTable,
    });
    if (created.length > 0) logger.info({ created }, 'created missing resources');
  }

  const lineStore = new DynamoLineStore({ documents: clients.documents, tableName: config.dynamodb.linesTable });
  if (config.linesFile) {
    const lines = readLinesFile(config.linesFile, { production: config.production });
    await upsertLines(lineStore, lines);
    logger.info({ lines: lines.map((l) => l.lineId) }, 'lines upserted from LINES_FILE');
  } else if (defaultLines.length > 0) {
    await upsertLines(lineStore, parseLines(defaultLines, { production: false }));
    logger.info({ lines: defaultLines.map((l) => l.lineId) }, 'demo lines registered (no LINES_FILE)');
  }
  const registry = createRegistry();
  const lines = new CachedLineRegistry({ store: lineStore, ttlMs: config.ingress.lineCacheTtlMs, registry });
  const secrets = new ReferenceSecretResolver({
    production: config.production,
    secretsManager: clients.secrets,
    cacheTtlMs: config.ingress.secretCacheTtlMs,
  });

  // Erasures: accepted by the ingress (API) and the console, run by the worker.
  const erasures = createErasures({ config, clients, logger, registry, runs: role !== 'ingress' });
  if (erasures.runner) {
    const runner = erasures.runner;
    runner.start();
    drains.push(() => runner.stop());
  }
  if (config.embedded) {
    // s3rver has no lifecycle rules: the media retention is swept here (infra/ sets a lifecycle rule instead).
    const sweep = new MediaRetentionSweep({ s3: clients.s3, bucket: config.s3.bucket, retentionDays: config.s3.mediaRetentionDays, logger });
    sweep.start();
    teardown.unshift(() => sweep.stop());
  }

  // Meta's side of each line: the lease holder among worker processes checks it; every process shows it.
  const watch = startWatch({ config, clients, lines: lineStore, secrets, registry, logger, compete: role !== 'ingress' });
  teardown.unshift(() => watch.stop());

  // Journey steps the worker writes, for the console's live tail in the same process.
  const journalBus = new JournalBus();
  // One conversation-state cache per process: in `all`, the contact API's pause is what the worker tells Bird next.
  const contacts = createContactStates(config, clients, registry);
  // One outbound store and status settler per process (replies configured): the worker's and the ingress's.
  const outbound = createOutboundRecords({ config, clients, registry, journalBus });
  if (role === 'worker' || role === 'all') {
    const worker = startWorker({ config, clients, lines, secrets, registry, logger, journalBus, contacts, accountEvents: watch.accountEvents, outbound });
    let workerStopping = false;
    drains.push(() => {
      workerStopping = true;
      return worker.stop();
    });
    logger.info({ concurrency: config.worker.concurrency, queueUrl: config.sqs.queueUrl }, 'worker polling');
    if (role === 'worker') {
      const health = await startHealthServer({ port: config.port, registry, isReady: () => !workerStopping });
      teardown.unshift(() => health.close());
    }
  }

  // The console (CONSOLE_TOKEN set; the embedded default generates one) on its own port.
  let consoleUrl: string | undefined;
  if (config.console.token) {
    const running = await startConsoleFromConfig({
      config,
      clients,
      lines: lineStore,
      bus: journalBus,
      localFeed: role !== 'ingress',
      logger,
      erasures: erasures.service,
      problems: watch.store,
      contacts,
    });
    teardown.unshift(() => running.close());
    logger.info({ port: running.port, url: running.url }, 'console listening');
    consoleUrl = running.url;
  }

  let ingress: RunningIngress | undefined;
  if (role === 'ingress' || role === 'all') {
    // The send API and Bird's webhooks ride on the webhook listener when the outbound queue is configured.
    const routes = config.outbound.queueUrl ? createOutboundRoutes({ config, clients, lines, secrets, registry, logger, contacts }, outbound?.store) : [];
    routes.push(createErasureRouter({ lines, secrets, erasures: erasures.service, logger }));
    const archiveObjects = new ArchiveObjects({ s3: clients.s3, bucket: config.s3.bucket });
    const archive = new S3PayloadArchive({ objects: archiveObjects, flushMs: config.archive.flushMs, maxBufferBytes: config.archive.bufferBytes, logger, registry });
    if (config.embedded) {
      // In AWS the bucket's lifecycle rule expires the archive; the S3 stand-in has none.
      const sweep = new ArchiveRetentionSweep({ objects: archiveObjects, retentionDays: config.archive.retentionDays, logger });
      sweep.start();
      teardown.unshift(async () => sweep.stop());
    }
    const producerSqs = createProducerSqsClient(config.aws, config.sqs.sendTimeoutMs);
    teardown.unshift(async () => producerSqs.destroy());
    ingress = await startIngress({
      port: config.port,
      verifyToken: config.whatsapp.verifyToken,
      appSecrets: config.whatsapp.appSecrets,
      maxBodyBytes: config.ingress.maxBodyBytes,
      queueUrl: config.sqs.queueUrl!,
      bucket: config.s3.bucket,
      batchWindowMs: config.sqs.batchWindowMs,
      sendTimeoutMs: config.sqs.sendTimeoutMs,
      claimCheckThresholdBytes: config.sqs.claimCheckThresholdBytes,
      sqs: clients.sqs,
      producerSqs,
      s3: clients.s3,
      lines,
      secrets,
      registry,
      logger,
      routes,
      archive,
      statuses:
        outbound && config.ingress.settlesStatuses
          ? new IngressStatusSettlement({ lines, settler: outbound.statuses, timeoutMs: config.sqs.sendTimeoutMs, registry, logger })
          : undefined,
    });
    const running = ingress;
    drains.push(() => running.drain());
    const url = `http://127.0.0.1:${ingress.port}/webhooks/whatsapp`;
    publish?.(url);
    logger.info({ port: ingress.port, webhookUrl: url }, 'ingress listening');
    if (banner) process.stdout.write(banner(url, consoleUrl));
  }

  return async () => {
    await Promise.all(drains.map((drain) => drain()));
    for (const stop of teardown) await stop();
  };
}

async function main(): Promise<void> {
  const role = (process.argv[2] ?? 'all') as Role;
  if (!ROLES.includes(role)) {
    process.stderr.write(`usage: node dist/main.js ${ROLES.join('|')}\n`);
    process.exit(2);
  }
  let config: Config;
  try {
    config = loadConfig();
    assertServable(config, role);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(78);
  }
  const logger = createLogger({ level: config.logLevel });

  let stop: () => Promise<void>;
  try {
    stop = await run(role, config, logger);
  } catch (error) {
    logger.fatal({ err: error }, 'failed to start');
    process.exit(error instanceof ConfigError ? 78 : 1);
  }

  let shuttingDown = false;
  const shutdown = (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ signal, boundMs: config.ingress.shutdownTimeoutMs }, 'shutting down');
    const force = setTimeout(() => {
      logger.error({ boundMs: config.ingress.shutdownTimeoutMs }, 'shutdown bound exceeded; exiting');
      process.exit(1);
    }, config.ingress.shutdownTimeoutMs);
    force.unref();
    stop().then(
      () => {
        logger.info('shutdown complete');
        process.exit(0);
      },
      (error) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

void main();
