import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { AwsSettings, Config } from '../config/config';
import { ConfigError } from '../errors';

/**
 * What the running embedded default publishes under DATA_DIR so the CLIs (lines, dlq, simulate)
 * can reach its stand-ins. Contains only local, throwaway values.
 */
export interface EmbeddedState {
  pid: number;
  endpoints: { sqs: string; dynamodb: string; s3: string };
  queueUrl: string;
  dlqUrl: string;
  outboundQueueUrl?: string;
  outboundDlqUrl?: string;
  gatewayUrl: string;
  birdUrl?: string;
  graphUrl?: string;
}

export interface LocalSecrets {
  verifyToken: string;
  appSecret: string;
  /** The demo lines' send API key (`Authorization: Bearer …`). */
  outboundKey: string;
  /** The console's token when CONSOLE_TOKEN is not set (added to older files on first use). */
  consoleToken: string;
}

export const STANDIN_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

const stateFile = (dataDir: string) => join(dataDir, 'embedded.json');
const secretsFile = (dataDir: string) => join(dataDir, 'local-secrets.json');

export function writeEmbeddedState(dataDir: string, state: EmbeddedState): void {
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(stateFile(dataDir), `${JSON.stringify(state, null, 2)}\n`);
}

export function readEmbeddedState(dataDir: string): EmbeddedState {
  const file = stateFile(dataDir);
  if (!existsSync(file)) {
    throw new ConfigError(`No embedded gateway found (${file} is missing): start it with \`npm start\`, or set SQS_QUEUE_URL and the AWS variables`);
  }
  return JSON.parse(readFileSync(file, 'utf8')) as EmbeddedState;
}

/** Local verify token and app secret, generated once and kept under DATA_DIR so restarts and the simulator agree. */
export function localSecrets(dataDir: string): LocalSecrets {
  const file = secretsFile(dataDir);
  const existing = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Partial<LocalSecrets>) : {};
  if (existing.verifyToken && existing.appSecret && existing.outboundKey && existing.consoleToken) return existing as LocalSecrets;
  // Files written before a field existed keep their values and gain the new one.
  const secrets: LocalSecrets = {
    verifyToken: existing.verifyToken ?? `local-${randomBytes(8).toString('hex')}`,
    appSecret: existing.appSecret ?? randomBytes(16).toString('hex'),
    outboundKey: existing.outboundKey ?? `local-out-${randomBytes(12).toString('hex')}`,
    consoleToken: existing.consoleToken ?? `wac_${randomBytes(24).toString('base64url')}`,
  };
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  return secrets;
}

/** How any client (the gateway's, a CLI's) reaches the embedded default's stand-ins at these endpoints. */
export function embeddedAwsSettingsFor(endpoints: EmbeddedState['endpoints']): Omit<AwsSettings, 'region'> {
  return { endpoints, forcePathStyle: true, credentials: STANDIN_CREDENTIALS, releaseVisibilitySeconds: 1 };
}

/** AWS settings that reach the stand-ins of the running embedded default. */
export function embeddedAwsSettings(config: Config): AwsSettings {
  return { region: config.aws.region, ...embeddedAwsSettingsFor(readEmbeddedState(config.dataDir).endpoints) };
}
