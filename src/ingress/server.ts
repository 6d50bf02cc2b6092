import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Registry } from 'prom-client';
import type { LineRegistry } from '../lines/registry';
import type { SecretResolver } from '../lines/secrets';
import type { Logger } from '../observability/logger';
import { createIngressApp } from './app';
import type { PayloadArchive } from '../archive/archive-writer';
import { S3ClaimCheckWriter } from '../queue/claim-check-writer';
import { SqsBatchProducer, type PayloadQueue } from './producer';
import { SqsReadiness, type ReadinessProbe } from './readiness';
import type { IngressStatusSettlement } from './status-settlement';

export interface IngressOptions {
  port: number;
  host?: string;
  verifyToken?: string;
  appSecrets: readonly string[];
  maxBodyBytes: number;
  queueUrl: string;
  bucket: string;
  batchWindowMs: number;
  sendTimeoutMs: number;
  claimCheckThresholdBytes: number;
  sqs: SQSClient;
  /** The producer's client (main.ts: createProducerSqsClient, cacheMiddleware); defaults to `sqs`. */
  producerSqs?: SQSClient;
  s3: S3Client;
  lines: LineRegistry;
  secrets: SecretResolver;
  registry: Registry;
  logger: Logger;
  /** More routes on this listener (the send API). */
  routes?: import('express').Router[];
  /** The archive of signed originals (main.ts: S3PayloadArchive); flushed last on drain. */
  archive?: PayloadArchive;
  /** Statuses of our replies settled without SQS (main.ts, INGRESS_SETTLES_STATUSES). */
  statuses?: IngressStatusSettlement;
  /** Overrides for tests and benchmarks. */
  queue?: PayloadQueue;
  readiness?: ReadinessProbe;
}

export interface RunningIngress {
  port: number;
  server: Server;
  queue: PayloadQueue;
  /** SIGTERM: not ready, stop accepting, let in-flight requests finish, flush batches. */
  drain(): Promise<void>;
}

export async function startIngress(options: IngressOptions): Promise<RunningIngress> {
  let draining = false;
  const queue =
    options.queue ??
    new SqsBatchProducer({
      sqs: options.producerSqs ?? options.sqs,
      queueUrl: options.queueUrl,
      claimCheck: new S3ClaimCheckWriter({ s3: options.s3, bucket: options.bucket }),
      batchWindowMs: options.batchWindowMs,
      timeoutMs: options.sendTimeoutMs,
      claimCheckThresholdBytes: options.claimCheckThresholdBytes,
      logger: options.logger,
      registry: options.registry,
    });
  const app = createIngressApp({
    verifyToken: options.verifyToken,
    appSecrets: options.appSecrets,
    maxBodyBytes: options.maxBodyBytes,
    lines: options.lines,
    secrets: options.secrets,
    queue,
    archive: options.archive,
    readiness: options.readiness ?? new SqsReadiness({ sqs: options.sqs, queueUrl: options.queueUrl }),
    statuses: options.statuses,
    registry: options.registry,
    logger: options.logger,
    routes: options.routes,
    isDraining: () => draining,
  });

  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(options.port, options.host ?? '0.0.0.0', () => resolve(s));
    s.once('error', reject);
  });
  // Longer than the load balancer's idle timeout, so the balancer closes idle connections first.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 30_000;
  const port = (server.address() as AddressInfo).port;

  let drained: Promise<void> | undefined;
  return {
    port,
    server,
    queue,
    drain() {
      drained ??= (async () => {
        draining = true;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // Keep-alive sockets that become idle after their last response close too.
        const sweeper = setInterval(() => server.closeIdleConnections(), 50);
        try {
          await closed;
        } finally {
          clearInterval(sweeper);
        }
        await queue.flush();
        await options.archive?.flush();
      })();
      return drained;
    },
  };
}
