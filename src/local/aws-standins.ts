import { mkdirSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';
import { join } from 'node:path';
import { startDurableSqs, type QueueDefinition, type SqsStandIn } from './durable-sqs';

/**
 * Wire-protocol stand-ins for SQS (local-aws-sqs in memory, or fauxqs on disk), DynamoDB (dynalite)
 * and S3 (s3rver). Used by the embedded default (`npm start`), the tests and the benchmarks.
 * They are devDependencies: the production image never loads this module.
 */
export interface AwsStandInOptions {
  /** Where dynalite (LevelDB) and s3rver keep data; omit for in-memory / throwaway dirs. */
  dataDir?: string;
  host?: string;
  ports?: { sqs?: number; dynamodb?: number; s3?: number };
  /** Base name of the main queue (default `wa-ingress`); the DLQ is `<name>-dlq`, the turn timer queue `<name>-turns`. */
  queueName?: string;
  /** Main queue and DLQ as high-throughput FIFO queues (`<name>.fifo`, `<name>-dlq.fifo`): what the embedded default and infra/ use. */
  fifo?: boolean;
  maxReceiveCount?: number;
  visibilityTimeoutSeconds?: number;
  /** Receives of an outbound job before SQS moves it to the outbound DLQ (default 20). */
  outboundMaxReceiveCount?: number;
  /**
   * Queues on disk under `<dataDir>/sqs` (fauxqs, see durable-sqs.ts) instead of local-aws-sqs's
   * memory: what the embedded default runs. Needs dataDir and Node ≥ 22.13.
   */
  durableSqs?: boolean;
}

export interface AwsStandIns {
  endpoints: { sqs: string; dynamodb: string; s3: string };
  queueUrl: string;
  dlqUrl: string;
  /** The outbound FIFO queue (replies) and its FIFO DLQ. */
  outboundQueueUrl: string;
  outboundDlqUrl: string;
  /** A small standard queue: the durable timer that flushes conversation turns (per-message delays, which FIFO lacks). */
  turnQueueUrl: string;
  /** s3rver accepts only these. */
  credentials: { accessKeyId: string; secretAccessKey: string };
  stopSqs(): Promise<void>;
  startSqs(): Promise<void>;
  stop(): Promise<void>;
}

import { STANDIN_CREDENTIALS } from '../config/embedded-state';
import { HIGH_THROUGHPUT_FIFO_ATTRIBUTES } from '../queue/fifo';
export { STANDIN_CREDENTIALS };

/** The AWS part of a gateway process's environment when it runs against these stand-ins (tests, benchmarks). */
export function standInEnvironment(standIns: Pick<AwsStandIns, 'endpoints' | 'credentials' | 'queueUrl' | 'dlqUrl'>): Record<string, string> {
  return {
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: standIns.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: standIns.credentials.secretAccessKey,
    AWS_ENDPOINT_URL_SQS: standIns.endpoints.sqs,
    AWS_ENDPOINT_URL_S3: standIns.endpoints.s3,
    AWS_ENDPOINT_URL_DYNAMODB: standIns.endpoints.dynamodb,
    S3_FORCE_PATH_STYLE: 'true',
    SQS_QUEUE_URL: standIns.queueUrl,
    SQS_DLQ_URL: standIns.dlqUrl,
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close(() => resolve());
  });
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

async function freePort(host: string): Promise<number> {
  const { createServer } = await import('node:net');
  const probe = createServer();
  const port = await listen(probe, 0, host);
  await closeServer(probe);
  return port;
}

export async function startAwsStandIns(options: AwsStandInOptions = {}): Promise<AwsStandIns> {
  const host = options.host ?? '127.0.0.1';
  const baseName = options.queueName ?? 'wa-ingress';
  const suffix = options.fifo ? '.fifo' : '';
  const queueName = `${baseName}${suffix}`;
  const dlqName = `${baseName}-dlq${suffix}`;
  const turnQueueName = `${baseName}-turns`;
  const fifoAttributes = options.fifo ? HIGH_THROUGHPUT_FIFO_ATTRIBUTES : {};
  const outboundName = `${baseName}-outbound.fifo`;
  const outboundDlqName = `${baseName}-outbound-dlq.fifo`;
  // local-aws-sqs also counts visibility changes (heartbeats, retries) as receives.
  const maxReceiveCount = options.maxReceiveCount ?? 10;
  const visibilityTimeout = options.visibilityTimeoutSeconds ?? 30;

  const accountId = '000000000000';
  const queues: QueueDefinition[] = [
    { QueueName: dlqName, Attributes: { ...fifoAttributes, MessageRetentionPeriod: String(14 * 86_400) } },
    { QueueName: turnQueueName, Attributes: { VisibilityTimeout: '30' } },
    {
      QueueName: queueName,
      Attributes: {
        ...fifoAttributes,
        VisibilityTimeout: String(visibilityTimeout),
        RedrivePolicy: JSON.stringify({
          deadLetterTargetArn: `arn:aws:sqs:us-east-1:${accountId}:${dlqName}`,
          maxReceiveCount,
        }),
      },
    },
    // Replies: FIFO in high-throughput mode, as infra/ declares it.
    { QueueName: outboundDlqName, Attributes: { FifoQueue: 'true', MessageRetentionPeriod: String(14 * 86_400) } },
    {
      QueueName: outboundName,
      Attributes: {
        FifoQueue: 'true',
        DeduplicationScope: 'messageGroup',
        FifoThroughputLimit: 'perMessageGroupId',
        VisibilityTimeout: String(visibilityTimeout),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: `arn:aws:sqs:us-east-1:${accountId}:${outboundDlqName}`, maxReceiveCount: options.outboundMaxReceiveCount ?? 20 }),
      },
    },
  ];
  let sqs: SqsStandIn;
  if (options.durableSqs) {
    if (!options.dataDir) throw new Error('durableSqs needs a dataDir');
    sqs = await startDurableSqs({ dataDir: options.dataDir, host, port: options.ports?.sqs, queues });
  } else {
    sqs = await startMemorySqs(host, options.ports?.sqs || (await freePort(host)), accountId, queues);
  }
  const queueUrlFor = (name: string) => `http://${host}:${sqs.port}/${accountId}/${name}`;

  const { default: dynalite } = await import('dynalite');
  const dynamoPath = options.dataDir ? join(options.dataDir, 'dynamodb') : undefined;
  if (dynamoPath) mkdirSync(dynamoPath, { recursive: true });
  const dynamoServer = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, ...(dynamoPath ? { path: dynamoPath } : {}) });
  const dynamoPort = await listen(dynamoServer, options.ports?.dynamodb ?? 0, host);

  const { default: S3rver } = await import('s3rver');
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const s3Dir = options.dataDir ? join(options.dataDir, 's3') : mkdtempSync(join(tmpdir(), 'wa-ingress-s3-'));
  mkdirSync(s3Dir, { recursive: true });
  const s3 = new S3rver({ port: options.ports?.s3 ?? 0, address: host, silent: true, directory: s3Dir });
  const s3Address = await s3.run();

  return {
    endpoints: {
      sqs: `http://${host}:${sqs.port}`,
      dynamodb: `http://${host}:${dynamoPort}`,
      s3: `http://${host}:${s3Address.port}`,
    },
    queueUrl: queueUrlFor(queueName),
    dlqUrl: queueUrlFor(dlqName),
    outboundQueueUrl: queueUrlFor(outboundName),
    outboundDlqUrl: queueUrlFor(outboundDlqName),
    turnQueueUrl: queueUrlFor(turnQueueName),
    credentials: STANDIN_CREDENTIALS,
    stopSqs: () => sqs.stop(),
    startSqs: () => sqs.start(),
    async stop() {
      await sqs.stop();
      await closeServer(dynamoServer);
      await s3.close();
    },
  };
}

/** local-aws-sqs: fast, in memory only; it builds queue URLs from the port it was given, so it needs a concrete one. */
async function startMemorySqs(host: string, port: number, accountId: string, queues: QueueDefinition[]): Promise<SqsStandIn> {
  const { createSqsServer } = await import('local-aws-sqs');
  let server: Server | undefined;
  const start = async () => {
    server = (await createSqsServer({ port, hostname: host, accountId, region: 'us-east-1', emulateQueueCreationLifecycle: false, queues } as never)) as unknown as Server;
  };
  await start();
  return {
    port,
    start,
    async stop() {
      if (server) await closeServer(server);
      server = undefined;
    },
  };
}
