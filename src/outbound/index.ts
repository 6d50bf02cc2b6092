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
import { GraphSendClient } from './graph-send-client';
import type { OutboundStore } from './outbound-store';
import { LineRateLimiter } from './rate-limiter';
import { OutboundSender } from './sender';

export type { OutboundAcceptor, OutboundRequest, AcceptedOutbound, OutboundStatus } from './job';
export { QueueOutboundAcceptor, InvalidOutboundError } from './acceptor';
export { DynamoOutboundStore } from './dynamo-outbound-store';
export { createSendApiRouter } from './send-api';

/** The send API (Entry 1) wired for the ingress role: records in DynamoDB, jobs on the outbound FIFO queue. */
export function createSendApi(deps: { config: Config; clients: AwsClients; lines: LineRegistry; secrets: SecretResolver; registry: Registry; logger: Logger }): Router {
  const { config, clients, registry, logger } = deps;
  const queueUrl = config.outbound.queueUrl;
  if (!queueUrl) throw new Error('SQS_OUTBOUND_QUEUE_URL is required for the send API');
  const store = new DynamoOutboundStore({ documents: clients.documents, tableName: config.dynamodb.outboundTable, retentionDays: config.outbound.retentionDays, registry });
  const acceptor = new QueueOutboundAcceptor({ store, sqs: clients.sqs, queueUrl, timeoutMs: config.sqs.sendTimeoutMs, registry, logger });
  return createSendApiRouter({ lines: deps.lines, secrets: deps.secrets, acceptor, store, registry, logger });
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
    reporter: new OutboundFailureReporter({ bird: deps.bird, secrets: deps.secrets, parker: new DlqParker({ sqs: clients.sqs, dlqUrl, registry }), logger }),
    defaultAccessToken: config.whatsapp.accessToken,
    uncertainGraceMs: config.outbound.uncertainGraceMs,
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
    visibilityTimeoutSeconds: config.worker.visibilityTimeoutSeconds,
    shutdownTimeoutMs: config.ingress.shutdownTimeoutMs - 500,
    receiveLoops: 1,
    // Small gather: a recipient's next reply should not wait for a full batch of free slots.
    receiveGatherMs: 5,
    // The sender computes its own retry delays (rate and pair limits, its backoff); the poller's
    // backoff, a floor under any handler delay, must not lengthen them: 1 s at most.
    retryBaseSeconds: 1,
    retryMaxSeconds: 1,
  });
  poller.start();
  logger.info({ queueUrl, concurrency: config.outbound.concurrency }, 'outbound sender polling');
  return poller;
}
