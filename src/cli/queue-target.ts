import { resolve } from 'node:path';
import { loadConfig, type Config } from '../config/config';
import { embeddedAwsSettings, readEmbeddedState } from '../config/embedded-state';
import { ConfigError } from '../errors';
import type { CliIo } from './io';

export interface QueueTarget {
  /** The config, its AWS settings pointed at the running embedded default when there is no deployment. */
  config: Config;
  queueUrl?: string;
  dlqUrl?: string;
}

/**
 * What an operator CLI works on: the deployed queues from the environment, or, with no SQS_QUEUE_URL,
 * the embedded default that `npm start` is running (its state file under DATA_DIR). Undefined after
 * telling the operator why not.
 */
export function queueTarget(io: CliIo, which: 'inbound' | 'outbound'): QueueTarget | undefined {
  try {
    const config = loadConfig(io.env);
    if (!config.embedded) {
      const { queueUrl, dlqUrl } = which === 'outbound' ? config.outbound : config.sqs;
      return { config, queueUrl, dlqUrl };
    }
    // No SQS_QUEUE_URL: work on the running embedded default (npm start).
    const state = readEmbeddedState(resolve(config.dataDir));
    const embedded = { ...config, aws: embeddedAwsSettings(config) };
    return which === 'outbound'
      ? { config: embedded, queueUrl: state.outboundQueueUrl, dlqUrl: state.outboundDlqUrl }
      : { config: embedded, queueUrl: state.queueUrl, dlqUrl: state.dlqUrl };
  } catch (error) {
    io.err(error instanceof ConfigError ? error.message : String(error));
    return undefined;
  }
}
