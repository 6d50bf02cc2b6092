import { resolve } from 'node:path';
import type { Config } from '../config/config';
import type { Logger } from '../observability/logger';
import { startAwsStandIns, type AwsStandIns } from './aws-standins';
import { localSecrets, STANDIN_CREDENTIALS, writeEmbeddedState, type LocalSecrets } from './embedded-settings';

export interface EmbeddedDefault {
  /** The configuration with the stand-ins' URLs, credentials and local secrets filled in. */
  config: Config;
  secrets: LocalSecrets;
  standIns: AwsStandIns;
  publish(gatewayUrl: string, extra?: { birdUrl?: string; graphUrl?: string }): void;
  stop(): Promise<void>;
}

/**
 * `npm start` with no SQS_QUEUE_URL: run SQS, DynamoDB and S3 stand-ins in-process, data under
 * DATA_DIR. local-aws-sqs keeps messages in memory only; production uses SQS.
 */
export async function startEmbeddedDefault(config: Config, logger: Logger): Promise<EmbeddedDefault> {
  const dataDir = resolve(config.dataDir);
  const standIns = await startAwsStandIns({ dataDir, visibilityTimeoutSeconds: config.worker.visibilityTimeoutSeconds });
  const secrets = localSecrets(dataDir);
  const embedded: Config = {
    ...config,
    whatsapp: {
      ...config.whatsapp,
      verifyToken: config.whatsapp.verifyToken ?? secrets.verifyToken,
      appSecrets: config.whatsapp.appSecrets.length > 0 ? config.whatsapp.appSecrets : [secrets.appSecret],
    },
    sqs: { ...config.sqs, queueUrl: standIns.queueUrl, dlqUrl: standIns.dlqUrl },
    aws: { ...config.aws, endpoints: standIns.endpoints, forcePathStyle: true, credentials: STANDIN_CREDENTIALS },
  };
  logger.info({ dataDir, endpoints: standIns.endpoints, queueUrl: standIns.queueUrl, dlqUrl: standIns.dlqUrl }, 'embedded stand-ins started (SQS messages live in memory only)');
  return {
    config: embedded,
    secrets,
    standIns,
    publish(gatewayUrl, extra) {
      writeEmbeddedState(dataDir, {
        pid: process.pid,
        endpoints: standIns.endpoints,
        queueUrl: standIns.queueUrl,
        dlqUrl: standIns.dlqUrl,
        gatewayUrl,
        ...extra,
      });
    },
    stop: () => standIns.stop(),
  };
}
