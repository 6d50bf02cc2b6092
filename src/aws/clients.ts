import { SQSClient, type ChangeMessageVisibilityBatchCommandInput, type ChangeMessageVisibilityCommandInput, type SQSClientConfig } from '@aws-sdk/client-sqs';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { AwsSettings } from '../config/config';

export interface AwsClients {
  sqs: SQSClient;
  s3: S3Client;
  dynamodb: DynamoDBClient;
  documents: DynamoDBDocumentClient;
  /** The hot path's conditional UpdateItems only, with cacheMiddleware: see src/aws/item-updates.ts. */
  itemUpdates: DynamoDBClient;
  secrets: SecretsManagerClient;
  destroy(): void;
}

/**
 * Every AWS call has a deadline: without one, a call stuck on a half-dead keep-alive socket would
 * hold a worker slot (and keep its message hidden through the heartbeat) until the process restarts.
 * SQS's must outlast a 20 s long poll; S3's covers a 5 MiB part on a slow link.
 */
export const AWS_REQUEST_TIMEOUTS_MS = { sqs: 30_000, dynamodb: 10_000, s3: 120_000, secrets: 10_000 };

/**
 * fauxqs 2.4.1 with persistence (the embedded default's queue) answers a release — a visibility
 * change to 0 — with HTTP 500 and drops the message from the running queue, its FIFO group locked
 * until a restart. The DLQ scan and the visibility keeper release that way; here a release waits
 * `seconds` instead, which fauxqs handles, and which changes nothing else for either caller.
 */
function releaseAfter(sqs: SQSClient, seconds: number): void {
  const floor = <T extends { VisibilityTimeout?: number }>(change: T): T => (change.VisibilityTimeout === 0 ? { ...change, VisibilityTimeout: seconds } : change);
  sqs.middlewareStack.add(
    (next, context) => (args) => {
      if (context.commandName === 'ChangeMessageVisibilityCommand') return next({ ...args, input: floor(args.input as ChangeMessageVisibilityCommandInput) });
      if (context.commandName === 'ChangeMessageVisibilityBatchCommand') {
        const input = args.input as ChangeMessageVisibilityBatchCommandInput;
        return next({ ...args, input: { ...input, Entries: input.Entries?.map(floor) } });
      }
      return next(args);
    },
    { step: 'initialize', name: 'releaseVisibilityFloor' },
  );
}

/**
 * The SDK's logger middleware builds a redacted copy of every input and output to hand to
 * `logger.info` (and of the input to `logger.error`), even for its default no-op logger; it skips
 * that only when the logger has no such method. The SDK's messages were dropped before too.
 */
export const QUIET_SDK_LOGGER = { trace() {}, debug() {}, warn() {} } as unknown as NonNullable<SQSClientConfig['logger']>;

function keepAliveHandler(maxSockets: number, requestTimeout: number): NodeHttpHandler {
  return new NodeHttpHandler({
    httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
    httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets }),
    connectionTimeout: 3000,
    requestTimeout,
    throwOnRequestTimeout: true,
  });
}

/**
 * The ingress producer's own SQS client: SendMessageBatch only, with `cacheMiddleware` (the
 * middleware stack is resolved once, not on every call). Its calls carry no per-call options, which
 * would reset that cache: the client's `requestTimeoutMs` (the payload's SQS_SEND_TIMEOUT_MS) is each
 * call's deadline instead of an `abortSignal`.
 */
export function createProducerSqsClient(settings: AwsSettings, requestTimeoutMs: number, maxSockets = 64): SQSClient {
  return new SQSClient({
    region: settings.region,
    logger: QUIET_SDK_LOGGER,
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    md5: false,
    cacheMiddleware: true,
    // One attempt per call: the batcher retries failed entries itself until their deadline; the SDK's
    // own retries would hold the conversation's group and a send slot for three request timeouts.
    maxAttempts: 1,
    endpoint: settings.endpoints.sqs,
    requestHandler: keepAliveHandler(maxSockets, requestTimeoutMs),
  });
}

/** One set of SDK clients per process, with keep-alive sockets sized for micro-batching and the worker's concurrency. */
export function createAwsClients(
  settings: AwsSettings,
  maxSockets = 64,
  timeoutsMs: typeof AWS_REQUEST_TIMEOUTS_MS = AWS_REQUEST_TIMEOUTS_MS,
): AwsClients {
  const requestHandler = (requestTimeout: number) => keepAliveHandler(maxSockets, requestTimeout);
  const common = {
    region: settings.region,
    logger: QUIET_SDK_LOGGER,
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
  };
  // md5: false skips the SDK's MD5 of every body sent and received, a check TLS already makes in
  // transit (figures in bench/client-calls.ts).
  const sqs = new SQSClient({ ...common, md5: false, endpoint: settings.endpoints.sqs, requestHandler: requestHandler(timeoutsMs.sqs) });
  if (settings.releaseVisibilitySeconds) releaseAfter(sqs, settings.releaseVisibilitySeconds);
  const s3 = new S3Client({
    ...common,
    endpoint: settings.endpoints.s3,
    forcePathStyle: settings.forcePathStyle,
    requestHandler: requestHandler(timeoutsMs.s3),
  });
  const dynamodb = new DynamoDBClient({ ...common, endpoint: settings.endpoints.dynamodb, requestHandler: requestHandler(timeoutsMs.dynamodb) });
  const itemUpdates = new DynamoDBClient({
    ...common,
    cacheMiddleware: true,
    endpoint: settings.endpoints.dynamodb,
    requestHandler: requestHandler(timeoutsMs.dynamodb),
  });
  const documents = DynamoDBDocumentClient.from(dynamodb, {
    marshallOptions: { removeUndefinedValues: true },
  });
  const secrets = new SecretsManagerClient({ ...common, requestHandler: requestHandler(timeoutsMs.secrets) });
  return {
    sqs,
    s3,
    dynamodb,
    documents,
    itemUpdates,
    secrets,
    destroy() {
      sqs.destroy();
      s3.destroy();
      documents.destroy();
      dynamodb.destroy();
      itemUpdates.destroy();
      secrets.destroy();
    },
  };
}
