import { resolve } from 'node:path';
import { processIo, type CliIo } from './io';
import { createAwsClients } from '../aws/clients';
import { loadConfig } from '../config/config';
import { embeddedAwsSettings, readEmbeddedState } from '../config/embedded-state';
import { ConfigError, PermanentError } from '../errors';
import { createLogger } from '../observability/logger';
import { createRegistry } from '../observability/metrics';
import { InvalidOutboundError, QueueOutboundAcceptor } from '../outbound/acceptor';
import { DynamoOutboundStore } from '../outbound/dynamo-outbound-store';
import { looksLikeOutboundId, toView } from '../outbound/record';

const USAGE = `Usage: npm run outbound -- <command>
  send <lineId> <to> <text> [--key <idempotency-key>]   queue a text reply (source "cli"); prints {id, status}
  get <lineId> <id>                                      the reply's status: {id, status, to, wamidDigest?, error?, createdAt, updatedAt}
  journey <lineId> <id>                                  the same with every step it took
Works on DYNAMODB_OUTBOUND_TABLE and SQS_OUTBOUND_QUEUE_URL (and the deployment's AWS credentials);
without SQS_QUEUE_URL, on the running embedded default (npm start).`;

/** Returns the exit code: 0 done, 1 not found or refused, 2 bad usage or configuration. */
export async function runOutboundCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const keyAt = argv.indexOf('--key');
  const key = keyAt >= 0 ? argv[keyAt + 1] : undefined;
  const [command, lineId, ...rest] = keyAt >= 0 ? [...argv.slice(0, keyAt), ...argv.slice(keyAt + 2)] : argv;
  const wants = command === 'send' ? 3 : 2;
  if (!command || !['send', 'get', 'journey'].includes(command) || !lineId || rest.length < wants - 1) {
    (command && command !== 'help' && command !== '--help' ? io.err : io.out)(USAGE);
    return command === 'help' || command === '--help' ? 0 : 2;
  }
  let config;
  try {
    config = loadConfig(io.env);
  } catch (error) {
    io.err(error instanceof ConfigError ? error.message : String(error));
    return 2;
  }
  let aws = config.aws;
  let queueUrl = config.outbound.queueUrl;
  if (config.embedded) {
    try {
      const state = readEmbeddedState(resolve(config.dataDir));
      aws = embeddedAwsSettings(config);
      queueUrl = state.outboundQueueUrl;
    } catch (error) {
      io.err((error as Error).message);
      return 2;
    }
  }
  const clients = createAwsClients(aws);
  const registry = createRegistry({ defaultMetrics: false });
  const store = new DynamoOutboundStore({ documents: clients.documents, tableName: config.dynamodb.outboundTable, retentionDays: config.outbound.retentionDays, registry });
  try {
    if (command === 'send') {
      if (!queueUrl) {
        io.err('SQS_OUTBOUND_QUEUE_URL is not set: replies need the outbound queue.');
        return 2;
      }
      const [to, ...words] = rest;
      const acceptor = new QueueOutboundAcceptor({ store, sqs: clients.sqs, queueUrl, timeoutMs: config.sqs.sendTimeoutMs, registry, logger: createLogger({ level: 'warn' }) });
      const accepted = await acceptor.accept({
        lineId,
        to: to!,
        idempotencyKey: key ?? `cli:${Date.now()}-${Math.random().toString(36).slice(2, 10)}`,
        body: { type: 'text', text: { body: words.join(' ') } },
        source: 'cli',
      });
      io.out(JSON.stringify({ id: accepted.id, status: accepted.status, duplicate: accepted.duplicate }));
      return 0;
    }
    const id = rest[0]!;
    const record = looksLikeOutboundId(id) ? await store.get(id) : undefined;
    if (!record || record.lineId !== lineId) {
      io.err(`No reply ${id} on line ${lineId}.`);
      return 1;
    }
    io.out(JSON.stringify(command === 'journey' ? { ...toView(record), attempts: record.attempts, journey: record.journey } : toView(record), null, 2));
    return 0;
  } catch (error) {
    if (error instanceof InvalidOutboundError || error instanceof PermanentError) {
      io.err(error.message);
      return 1;
    }
    io.err(`outbound ${command} failed: ${(error as Error).message}`);
    return 1;
  } finally {
    clients.destroy();
  }
}

if (require.main === module) {
  runOutboundCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error) => {
      process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
