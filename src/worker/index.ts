import type { AwsClients } from '../aws/clients';
import { createBirdClient, type BirdBreakerOptions, type BirdRetryOptions } from '../bird';
import type { Config } from '../config/config';
import type { JournalBus } from '../journal/journal-bus';
import { DynamoDedupeStore } from '../dedupe/dynamo-dedupe-store';
import type { LineRegistry } from '../lines/registry';
import type { SecretResolver } from '../lines/secrets';
import { S3MediaStore } from '../media';
import type { Logger } from '../observability/logger';
import type { Registry } from '../observability/metrics';
import { ClaimCheckReader } from '../queue/claim-check-reader';
import { DlqParker } from '../queue/dlq';
import { EventPipeline } from './pipeline';
import { GraphPresence } from '../outbound/presence';
import { SqsPoller } from '../queue/poller';
import { createOutboundAcceptor, startSender } from '../outbound';
import { FlowReplyScheduler } from '../outbound/flow-replies';
import { DynamoOutboundStore } from '../outbound/dynamo-outbound-store';
import { StoreStatusSettler } from '../outbound/status-settler';

export interface RunningWorker {
  poller: SqsPoller;
  /** The outbound sender's poller, when SQS_OUTBOUND_QUEUE_URL is set. */
  sender?: SqsPoller;
  stop(): Promise<void>;
}

/** Wires the worker's adapters from the configuration and starts polling. */
export function startWorker(deps: {
  config: Config;
  clients: AwsClients;
  lines: LineRegistry;
  secrets: SecretResolver;
  registry: Registry;
  logger: Logger;
  /** Where the worker's journey steps are published for a console in the same process. */
  journalBus?: JournalBus;
  /** Knobs no environment variable reaches (tests shorten Bird's retries and the poller's backoff). */
  tuning?: {
    bird?: { retry?: BirdRetryOptions; breaker?: BirdBreakerOptions };
    poller?: { retryBaseSeconds?: number; retryMaxSeconds?: number };
    /** The sender's retry delays for clean refusals (130429 and the like). */
    sender?: { retryBaseSeconds?: number; retryMaxSeconds?: number };
  };
}): RunningWorker {
  const { config, clients, registry } = deps;
  const logger = deps.logger.child({ role: 'worker' });
  if (!config.sqs.queueUrl || !config.sqs.dlqUrl) throw new Error('SQS_QUEUE_URL and SQS_DLQ_URL are required for the worker');
  const visibilityTimeoutSeconds = config.worker.visibilityTimeoutSeconds;
  // The lease follows the visibility and ends first. The heartbeat renews the visibility at least
  // every third of it, so after a crash the message stays hidden for at least two thirds of it; a
  // lease of half of it (renewed every third of that) has lapsed by then. The next receive claims
  // at once, instead of finding the dead worker's lease and waiting out a retry backoff.
  const leaseMs = Math.floor((visibilityTimeoutSeconds * 1000) / 2);
  const bird = createBirdClient({
    logger,
    registry,
    timeoutMs: config.worker.birdTimeoutMs,
    birdApiBaseUrl: config.worker.birdApiBaseUrl,
    requireHttps: config.production,
    ...deps.tuning?.bird,
  });
  // Replies: statuses settle their records here; the sender consumes the outbound queue beside the inbound poller.
  const outboundStore = config.outbound.queueUrl
    ? new DynamoOutboundStore({
        documents: clients.documents,
        tableName: config.dynamodb.outboundTable,
        retentionDays: config.outbound.retentionDays,
        registry,
        journalBus: deps.journalBus,
      })
    : undefined;
  const parker = new DlqParker({ sqs: clients.sqs, dlqUrl: config.sqs.dlqUrl, registry });
  const pipeline = new EventPipeline({
    outboundStatuses: outboundStore && new StoreStatusSettler(outboundStore, registry),
    // A Flow's synchronous replies are accepted here, before the inbound event is COMPLETED.
    replies: outboundStore && new FlowReplyScheduler({ acceptor: createOutboundAcceptor({ config, clients, registry, logger }, outboundStore).acceptor, registry, logger }),
    lines: deps.lines,
    secrets: deps.secrets,
    dedupe: new DynamoDedupeStore({
      documents: clients.documents,
      tableName: config.dynamodb.dedupeTable,
      ttlDays: config.worker.dedupeTtlDays,
      leaseMs,
      visibilityTimeoutSeconds,
      registry,
      journalBus: deps.journalBus,
    }),
    media: new S3MediaStore({
      s3: clients.s3,
      bucket: config.s3.bucket,
      graphApiBaseUrl: config.worker.graphApiBaseUrl,
      graphApiVersion: config.worker.graphApiVersion,
      allowedHosts: config.worker.mediaAllowedHosts,
      urlTtlSeconds: config.worker.mediaUrlTtlSeconds,
      requireHttps: config.production,
      logger,
      registry,
    }),
    bird,
    parker,
    defaultAccessToken: config.whatsapp.accessToken,
    presence: new GraphPresence({
      graphApiBaseUrl: config.worker.graphApiBaseUrl,
      graphApiVersion: config.worker.graphApiVersion,
      secrets: deps.secrets,
      defaultAccessToken: config.whatsapp.accessToken,
      registry,
      logger,
    }),
    logger,
    registry,
  });
  const poller = new SqsPoller({
    sqs: clients.sqs,
    queueUrl: config.sqs.queueUrl,
    handler: pipeline.handle,
    logger,
    registry,
    concurrency: config.worker.concurrency,
    waitTimeSeconds: config.worker.waitTimeSeconds,
    visibilityTimeoutSeconds,
    // Within main's bound, with room to close clients and exit.
    shutdownTimeoutMs: config.ingress.shutdownTimeoutMs - 500,
    // While Bird's breaker is open, new messages would only fail: leave them on the queue.
    shouldPause: () => bird.circuitOpen,
    claimChecks: new ClaimCheckReader({ s3: clients.s3, bucket: config.s3.bucket }),
    parker,
    ...deps.tuning?.poller,
  });
  poller.start();
  const sender = outboundStore
    ? startSender({ config, clients, lines: deps.lines, secrets: deps.secrets, store: outboundStore, bird, registry, logger, tuning: deps.tuning?.sender })
    : undefined;
  return { poller, sender, stop: async () => void (await Promise.all([poller.stop(), sender?.stop()])) };
}
