import type { Router } from 'express';
import type { Registry } from 'prom-client';
import { startIngress, type RunningIngress } from '../../src/ingress/server';
import type { LineInput } from '../../src/lines/line';
import { parseLines, upsertLines } from '../../src/lines/admin';
import { CachedLineRegistry } from '../../src/lines/registry';
import { ReferenceSecretResolver } from '../../src/lines/secrets';
import { DynamoLineStore } from '../../src/lines/store';
import { createRegistry } from '../../src/observability/metrics';
import type { AwsHarness } from './aws';
import type { Logger } from '../../src/observability/logger';
import type { SecretResolver } from '../../src/lines/secrets';
import { DynamoOutboundStore, QueueOutboundAcceptor, createSendApiRouter } from '../../src/outbound';
import { StoreStatusSettler } from '../../src/outbound/status-settler';
import { IngressStatusSettlement } from '../../src/ingress/status-settlement';
import type { AwsClients } from '../../src/aws/clients';
import { capturedLogger } from './logs';
import { ContactStates, DynamoContactStore } from '../../src/conversation';

function sendApiFor(aws: AwsHarness, lines: CachedLineRegistry, secrets: SecretResolver, registry: Registry, logger: Logger, timeoutMs: number) {
  const store = new DynamoOutboundStore({ documents: aws.clients.documents, tableName: aws.names.outboundTable, retentionDays: 30, registry });
  const acceptor = new QueueOutboundAcceptor({ store, sqs: aws.clients.sqs, queueUrl: aws.standIns.outboundQueueUrl, timeoutMs, registry, logger });
  // The contact API rides on the same router, as in main.ts.
  const contacts = new ContactStates({ store: new DynamoContactStore({ documents: aws.clients.documents, tableName: aws.names.contactsTable }), registry, cacheMs: 0 });
  return createSendApiRouter({ lines, secrets, acceptor, store, registry, logger, contacts });
}

/** The ingress's own status settlement, on the harness's outbound table (or other clients: a dead endpoint). */
type SettleOverrides = { clients?: AwsClients; timeoutMs?: number; breaker?: { consecutiveFailures: number; halfOpenAfterMs: number } };

function statusSettlementFor(aws: AwsHarness, options: SettleOverrides, lines: CachedLineRegistry, registry: Registry, logger: Logger) {
  const clients = options.clients ?? aws.clients;
  const store = new DynamoOutboundStore({ documents: clients.documents, itemUpdates: clients.itemUpdates, tableName: aws.names.outboundTable, retentionDays: 30, registry });
  return new IngressStatusSettlement({ lines, settler: new StoreStatusSettler(store, registry), timeoutMs: options.timeoutMs ?? 3000, breaker: options.breaker, registry, logger });
}

export const VERIFY_TOKEN = 'verify-token-under-test';
export const APP_SECRET = 'app-secret-under-test-1';
export const ROTATED_SECRET = 'app-secret-under-test-2';

export interface IngressHarness {
  ingress: RunningIngress;
  url: string;
  registry: Registry;
  logs: ReturnType<typeof capturedLogger>;
  putLines(lines: LineInput[]): Promise<void>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

export async function startIngressHarness(
  aws: AwsHarness,
  overrides: {
    sendTimeoutMs?: number;
    batchWindowMs?: number;
    maxBodyBytes?: number;
    outbound?: boolean;
    routes?: Router[];
    /** Statuses of our replies settled in the ingress (main.ts with INGRESS_SETTLES_STATUSES), on these clients' outbound table. */
    settleStatuses?: SettleOverrides;
  } = {},
): Promise<IngressHarness> {
  const registry = createRegistry({ defaultMetrics: false });
  const logs = capturedLogger('debug');
  const store = new DynamoLineStore({ documents: aws.clients.documents, tableName: aws.names.linesTable });
  const lines = new CachedLineRegistry({ store, ttlMs: 0, negativeTtlMs: 0, registry });
  const secrets = new ReferenceSecretResolver({ production: false, cacheTtlMs: 0, env: { WA_LINE_SECRET_LINE_A: 'line-a-secret-from-env' } });
  // The send API on the same listener, as main.ts mounts it, on the harness's outbound queue and table.
  const routes = [...(overrides.outbound ? [sendApiFor(aws, lines, secrets, registry, logs.logger, overrides.sendTimeoutMs ?? 3000)] : []), ...(overrides.routes ?? [])];
  const ingress = await startIngress({
    port: 0,
    host: '127.0.0.1',
    verifyToken: VERIFY_TOKEN,
    appSecrets: [APP_SECRET, ROTATED_SECRET],
    maxBodyBytes: overrides.maxBodyBytes ?? 3 * 1024 * 1024,
    queueUrl: aws.standIns.queueUrl,
    bucket: aws.names.bucket,
    batchWindowMs: overrides.batchWindowMs ?? 2,
    sendTimeoutMs: overrides.sendTimeoutMs ?? 3000,
    claimCheckThresholdBytes: 900 * 1024,
    sqs: aws.clients.sqs,
    s3: aws.clients.s3,
    lines,
    secrets,
    registry,
    logger: logs.logger,
    routes,
    statuses: overrides.settleStatuses && statusSettlementFor(aws, overrides.settleStatuses, lines, registry, logs.logger),
  });
  return {
    ingress,
    url: `http://127.0.0.1:${ingress.port}`,
    registry,
    logs,
    async putLines(input) {
      await upsertLines(store, parseLines(input, { production: false }));
    },
    async metric(name, labels = {}) {
      const metric = await registry.getSingleMetric(name)?.get();
      return (metric?.values ?? [])
        .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
        .reduce((sum, v) => sum + v.value, 0);
    },
    async stop() {
      await ingress.drain();
    },
  };
}
