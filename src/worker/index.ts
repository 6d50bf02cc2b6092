import { createContactStates } from '../conversation';
import type { ContactStates } from '../conversation/contact-states';
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
import type { AccountEventSink } from '../watch/account-events';
import { GraphPresence } from '../outbound/presence';
import { DEFAULT_RETRY_POLICY, SqsPoller } from '../queue/poller';
import { createOutboundAcceptor, createOutboundRecords, startOutboxSweeper, startSender, type OutboundRecords } from '../outbound';
import { FlowReplyScheduler } from '../outbound/flow-replies';
import { SequencedHandler } from '../queue/sequenced-handler';
import { isFifoQueueUrl } from '../queue/fifo';
import { TurnBuffer } from './turns/turn-buffer';
import { DynamoTurnStore } from './turns/turn-store';
import { TurnTimers } from './turns/turn-timers';

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
  /** Conversation state; shared with the contact API in an `all` process so both see one cache. */
  contacts?: ContactStates;
  /** Account webhooks update the lines' problems (src/watch). */
  accountEvents?: AccountEventSink;
  /** The process's outbound records (main.ts shares them with the ingress); built here when absent. */
  outbound?: OutboundRecords;
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
  const outbound = deps.outbound ?? createOutboundRecords({ config, clients, registry, journalBus: deps.journalBus });
  const outboundStore = outbound?.store;
  const parker = new DlqParker({ sqs: clients.sqs, dlqUrl: config.sqs.dlqUrl, registry });
  // One per process: the pipeline writes it, the sender's reply gate reads it.
  const contacts = deps.contacts ?? createContactStates(config, clients, registry);
  const turns = config.sqs.turnQueueUrl ? startTurns(config, clients, logger, registry) : undefined;
  if (!turns) logger.warn('SQS_TURN_QUEUE_URL is not set: lines with `turn` get each message delivered alone');
  const pipeline = new EventPipeline({
    accountEvents: deps.accountEvents,
    turns: turns?.buffer,
    outboundStatuses: outbound?.statuses,
    // A Flow's synchronous replies are accepted here, before the inbound event is COMPLETED.
    replies: outboundStore && new FlowReplyScheduler({ acceptor: createOutboundAcceptor({ config, clients, registry, logger }, outboundStore).acceptor, registry, logger }),
    lines: deps.lines,
    secrets: deps.secrets,
    contacts,
    dedupe: new DynamoDedupeStore({
      documents: clients.documents,
      itemUpdates: clients.itemUpdates,
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
  // The poller's backoff, as tuned; the sequencer must know it to hold a conversation long enough.
  const retryPolicy = {
    baseSeconds: deps.tuning?.poller?.retryBaseSeconds ?? DEFAULT_RETRY_POLICY.baseSeconds,
    maxSeconds: deps.tuning?.poller?.retryMaxSeconds ?? DEFAULT_RETRY_POLICY.maxSeconds,
  };
  // FIFO: one message per conversation at a time, in order; a standard queue's messages pass straight through.
  const sequenced = new SequencedHandler({ handler: pipeline.handle, logger, registry, retryPolicy });
  const poller = new SqsPoller({
    sqs: clients.sqs,
    queueUrl: config.sqs.queueUrl,
    handler: sequenced.handle,
    logger,
    registry,
    concurrency: config.worker.concurrency,
    waitTimeSeconds: config.worker.waitTimeSeconds,
    receiveLingerMs: config.worker.receiveLingerMs,
    visibilityTimeoutSeconds,
    // Within main's bound, with room to close clients and exit.
    shutdownTimeoutMs: config.ingress.shutdownTimeoutMs - 500,
    // While Bird's breaker is open, new messages would only fail: leave them on the queue.
    shouldPause: () => bird.circuitOpen,
    claimChecks: new ClaimCheckReader({ s3: clients.s3, bucket: config.s3.bucket }),
    parker,
    ...deps.tuning?.poller,
    retryBaseSeconds: retryPolicy.baseSeconds,
    retryMaxSeconds: retryPolicy.maxSeconds,
    // FIFO: one receive out at a time. Two concurrent receives could each take one message of a
    // conversation and come back in the wrong order; SQS would not hand out the second while the first
    // is in flight, but local-aws-sqs does, and one receive returns up to 10 messages anyway.
    ...(isFifoQueueUrl(config.sqs.queueUrl) ? { receiveLoops: 1 } : {}),
  });
  poller.start();
  turns?.timers.start();
  const sender = outboundStore
    ? startSender({ config, clients, lines: deps.lines, secrets: deps.secrets, store: outboundStore, bird, registry, logger, contacts, tuning: deps.tuning?.sender })
    : undefined;
  const outbox = outboundStore ? startOutboxSweeper({ config, clients, registry, logger }) : undefined;
  return {
    poller,
    sender,
    stop: async () => {
      await Promise.all([poller.stop(), sender?.stop(), outbox?.stop()]);
      await turns?.timers.stop();
    },
  };
}

/** The turn buffer (in the dedupe table) and its timers (SQS_TURN_QUEUE_URL); see src/worker/turns. */
function startTurns(config: Config, clients: AwsClients, logger: Logger, registry: Registry): { buffer: TurnBuffer; timers: TurnTimers } {
  const log = logger.child({ component: 'turns' });
  const timers: TurnTimers = new TurnTimers({
    sqs: clients.sqs,
    queueUrl: config.sqs.turnQueueUrl!,
    onFire: (fire) => buffer.flush(fire),
    logger: log,
    registry,
    waitTimeSeconds: config.worker.waitTimeSeconds,
  });
  const buffer: TurnBuffer = new TurnBuffer({
    store: new DynamoTurnStore({ documents: clients.documents, tableName: config.dynamodb.dedupeTable, ttlDays: config.worker.dedupeTtlDays }),
    timers,
    sqs: clients.sqs,
    queueUrl: config.sqs.queueUrl!,
    logger: log,
    registry,
  });
  return { buffer, timers };
}
