import type { ContactStates } from '../conversation/contact-states';
import type { AwsClients } from '../aws/clients';
import type { BirdClient } from '../bird';
import type { Config } from '../config/config';
import type { LineRegistry } from '../lines/registry';
import type { SecretResolver } from '../lines/secrets';
import type { Logger } from '../observability/logger';
import type { Registry } from '../observability/metrics';
import { DlqParker } from '../queue/dlq';
import { SqsPoller } from '../queue/poller';
import type { Router } from 'express';
import { QueueOutboundAcceptor } from './acceptor';
import { DynamoOutboundStore } from './dynamo-outbound-store';
import { OutboundFailureReporter } from './failure-reporter';
import { createSendApiRouter } from './send-api';
import { birdWebhookRouter } from './bird-webhook-receiver';
import { HttpConversationMessageReader } from '../bird/conversation-message-reader';
import { GraphSendClient } from './graph-send-client';
import type { OutboundStore } from './outbound-store';
import { LineRateLimiter } from './rate-limiter';
import { ReplyGate } from './reply-gate';
import { OutboundSender, SENDER_POLLER_RETRY_POLICY } from './sender';
import { OutboundJobQueue } from './job-queue';
import { DynamoOutboxIndex } from './outbox-index';
import { OutboxSweeper } from './outbox-sweeper';
import { OutboundJournal } from '../journal/outbound-journal';
import type { JournalBus } from '../journal/journal-bus';
import { StoreStatusSettler } from './status-settler';

export type { OutboundAcceptor, OutboundRequest, AcceptedOutbound, OutboundStatus } from './job';
export { QueueOutboundAcceptor, InvalidOutboundError } from './acceptor';
export { DynamoOutboundStore } from './dynamo-outbound-store';
export { createSendApiRouter } from './send-api';

/** A process's outbound records and the settler of Meta's statuses on them: the worker's and the ingress's, one wiring. */
export interface OutboundRecords {
  store: DynamoOutboundStore;
  statuses: StoreStatusSettler;
}

/**
 * The outbound records when replies are configured (SQS_OUTBOUND_QUEUE_URL: the outbound table
 * comes with it), else undefined. One per process: in the `all` role the worker and the ingress share it.
 */
export function createOutboundRecords(deps: { config: Config; clients: AwsClients; registry: Registry; journalBus?: JournalBus }): OutboundRecords | undefined {
  const { config, clients, registry } = deps;
  if (!config.outbound.queueUrl) return undefined;
  const store = new DynamoOutboundStore({
    documents: clients.documents,
    itemUpdates: clients.itemUpdates,
    tableName: config.dynamodb.outboundTable,
    retentionDays: config.outbound.retentionDays,
    registry,
    journalBus: deps.journalBus,
  });
  return { store, statuses: new StoreStatusSettler(store, registry) };
}

type OutboundDeps = { config: Config; clients: AwsClients; lines: LineRegistry; secrets: SecretResolver; registry: Registry; logger: Logger; contacts?: ContactStates };

/** The one acceptor of a process: records in DynamoDB, jobs on the outbound FIFO queue. */
export function createOutboundAcceptor(deps: Omit<OutboundDeps, 'lines' | 'secrets'>, store?: OutboundStore): { acceptor: QueueOutboundAcceptor; store: OutboundStore } {
  const { config, clients, registry, logger } = deps;
  const queueUrl = config.outbound.queueUrl;
  if (!queueUrl) throw new Error('SQS_OUTBOUND_QUEUE_URL is required to accept replies');
  const records = store ?? new DynamoOutboundStore({ documents: clients.documents, itemUpdates: clients.itemUpdates, tableName: config.dynamodb.outboundTable, retentionDays: config.outbound.retentionDays, registry });
  return { store: records, acceptor: new QueueOutboundAcceptor({ store: records, sqs: clients.sqs, queueUrl, timeoutMs: config.sqs.sendTimeoutMs, registry, logger }) };
}

/**
 * The ingress role's outbound entries on one acceptor: the send API (Entry 1) and Bird webhooks (Entry 3).
 * `store`: the process's one outbound store (createOutboundRecords), so its journal notices reach the console.
 */
export function createOutboundRoutes(deps: OutboundDeps, store?: OutboundStore): Router[] {
  const { config, registry, logger } = deps;
  const { acceptor, store: records } = createOutboundAcceptor(deps, store);
  const journal = new OutboundJournal({ documents: deps.clients.documents, tableName: config.dynamodb.outboundTable });
  return [
    createSendApiRouter({ lines: deps.lines, secrets: deps.secrets, acceptor, store: records, registry, logger, contacts: deps.contacts, countSent: (lineId, ids, since) => journal.sentToContact(lineId, ids, since) }),
    birdWebhookRouter({
      lines: deps.lines,
      secrets: deps.secrets,
      acceptor,
      messages: new HttpConversationMessageReader({ birdApiBaseUrl: config.worker.birdApiBaseUrl, timeoutMs: config.worker.birdTimeoutMs }),
      publicBaseUrl: config.ingress.publicBaseUrl,
      maxSkewMs: config.ingress.birdWebhookMaxSkewMs,
      registry,
      logger,
    }),
  ];
}

/**
 * The sender in the worker role: an SqsPoller on the outbound FIFO queue with one receive loop
 * (the local stand-in hands out a FIFO group's messages to concurrent receives; one loop keeps
 * them in queue order), handled by OutboundSender.
 */
export function startSender(deps: {
  config: Config;
  clients: AwsClients;
  lines: LineRegistry;
  secrets: SecretResolver;
  store: OutboundStore;
  bird: BirdClient;
  registry: Registry;
  logger: Logger;
  /** Conversation state: the pause and window checked before each send (src/outbound/reply-gate.ts). */
  contacts?: ContactStates;
  tuning?: { retryBaseSeconds?: number; retryMaxSeconds?: number };
}): SqsPoller {
  const { config, clients, registry } = deps;
  const logger = deps.logger.child({ component: 'outbound-sender' });
  const { queueUrl, dlqUrl } = config.outbound;
  if (!queueUrl || !dlqUrl) throw new Error('SQS_OUTBOUND_QUEUE_URL and SQS_OUTBOUND_DLQ_URL are required for the sender');
  const sender = new OutboundSender({
    store: deps.store,
    lines: deps.lines,
    secrets: deps.secrets,
    graph: new GraphSendClient({ graphApiBaseUrl: config.worker.graphApiBaseUrl, graphApiVersion: config.worker.graphApiVersion, timeoutMs: config.outbound.sendTimeoutMs }),
    rate: new LineRateLimiter(),
    gate: deps.contacts && new ReplyGate({ contacts: deps.contacts, registry }),
    reporter: new OutboundFailureReporter({
      bird: deps.bird,
      secrets: deps.secrets,
      parker: new DlqParker({ sqs: clients.sqs, dlqUrl, registry }),
      logger,
      outbox: new DynamoOutboxIndex({ documents: clients.documents, tableName: config.dynamodb.outboundTable }),
    }),
    defaultAccessToken: config.whatsapp.accessToken,
    uncertainGraceMs: config.outbound.uncertainGraceMs,
    maxAmbiguousResends: config.outbound.maxAmbiguousResends,
    lapsedGraceMs: config.outbound.uncertainGraceMs + config.worker.visibilityTimeoutSeconds * 1000,
    sendTimeoutMs: config.outbound.sendTimeoutMs,
    logger,
    registry,
    ...deps.tuning,
  });
  const poller = new SqsPoller({
    sqs: clients.sqs,
    queueUrl,
    handler: sender.handle,
    logger,
    registry,
    metricsPrefix: 'wa_ingress_outbound_sender',
    concurrency: config.outbound.concurrency,
    waitTimeSeconds: config.worker.waitTimeSeconds,
    receiveLingerMs: config.worker.receiveLingerMs,
    visibilityTimeoutSeconds: config.worker.visibilityTimeoutSeconds,
    shutdownTimeoutMs: config.ingress.shutdownTimeoutMs - 500,
    receiveLoops: 1,
    // Small gather: a recipient's next reply should not wait for a full batch of free slots.
    receiveGatherMs: 5,
    // The sender computes its own retry delays (rate and pair limits, its backoff); the poller's
    // backoff, a floor under any handler delay, must not lengthen them: 1 s at most.
    retryBaseSeconds: SENDER_POLLER_RETRY_POLICY.baseSeconds,
    retryMaxSeconds: SENDER_POLLER_RETRY_POLICY.maxSeconds,
  });
  poller.start();
  logger.info({ queueUrl, concurrency: config.outbound.concurrency }, 'outbound sender polling');
  return poller;
}

/**
 * The outbox sweeper in the worker role: replies whose record was written but whose job never
 * reached the outbound queue (or was never claimed) past OUTBOUND_OUTBOX_AGE_MS are enqueued again.
 */
export function startOutboxSweeper(deps: { config: Config; clients: AwsClients; registry: Registry; logger: Logger }): OutboxSweeper {
  const { config, clients, registry } = deps;
  const queueUrl = config.outbound.queueUrl;
  if (!queueUrl) throw new Error('SQS_OUTBOUND_QUEUE_URL is required for the outbox sweeper');
  const sweeper = new OutboxSweeper({
    index: new DynamoOutboxIndex({ documents: clients.documents, tableName: config.dynamodb.outboundTable }),
    jobs: new OutboundJobQueue({ sqs: clients.sqs, queueUrl, timeoutMs: config.sqs.sendTimeoutMs, registry }),
    ageMs: config.outbound.outbox.ageMs,
    intervalMs: config.outbound.outbox.sweepMs,
    registry,
    logger: deps.logger.child({ component: 'outbox' }),
  });
  sweeper.start();
  return sweeper;
}
