import { processIo, type CliIo } from './io';
import { queueTarget } from './queue-target';
import { createAwsClients } from '../aws/clients';
import { PermanentError } from '../errors';
import { createLogger } from '../observability/logger';
import { createRegistry } from '../observability/metrics';
import { InvalidOutboundError, QueueOutboundAcceptor } from '../outbound/acceptor';
import { DynamoOutboundStore } from '../outbound/dynamo-outbound-store';
import { looksLikeOutboundId, toView } from '../outbound/record';
import { UncertainReplies } from '../outbound/uncertain-replies';
import { DeadLetterQueue } from '../queue/dlq';

const USAGE = `Usage: npm run outbound -- <command>
  send <lineId> <to> <text> [--key <idempotency-key>]   queue a text reply (source "cli"); prints {id, status}
  get <lineId> <id>                                      the reply's status: {id, status, to, wamidDigest?, error?, createdAt, updatedAt}
  journey <lineId> <id>                                  the same with every step it took
  resend <lineId> <id> --reason <why>                    a reply parked send_uncertain: allow one more send and
                                                         put its parked job back on the outbound queue
  mark-sent <lineId> <id> --reason <why>                 a reply parked send_uncertain: settle it sent (no wamid),
                                                         and take its parked job off the DLQ
Works on DYNAMODB_OUTBOUND_TABLE and SQS_OUTBOUND_QUEUE_URL (and the deployment's AWS credentials);
without SQS_QUEUE_URL, on the running embedded default (npm start).`;

const DECISION_REFUSED = {
  not_found: 'No such reply on this line.',
  not_uncertain: 'The reply is not parked uncertain (a status or another decision came first): nothing changed.',
  no_parked_job: 'Its parked job is not in the outbound DLQ (yet): try again in a minute; nothing changed.',
} as const;

/** `--name value` pairs out of argv, and what is left in order. */
function splitFlags(argv: string[], names: string[]): { flags: Record<string, string | undefined>; positional: string[] } {
  const flags: Record<string, string | undefined> = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (names.includes(argv[i]!)) flags[argv[i]!] = argv[++i];
    else positional.push(argv[i]!);
  }
  return { flags, positional };
}

/** Returns the exit code: 0 done, 1 not found or refused, 2 bad usage or configuration. */
export async function runOutboundCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const { flags, positional } = splitFlags(argv, ['--key', '--reason']);
  const key = flags['--key'];
  const [command, lineId, ...rest] = positional;
  const wants = command === 'send' ? 3 : 2;
  const deciding = command === 'resend' || command === 'mark-sent';
  if (!command || !['send', 'get', 'journey', 'resend', 'mark-sent'].includes(command) || !lineId || rest.length < wants - 1 || (deciding && !flags['--reason'])) {
    (command && command !== 'help' && command !== '--help' ? io.err : io.out)(USAGE);
    return command === 'help' || command === '--help' ? 0 : 2;
  }
  const target = queueTarget(io, 'outbound');
  if (!target) return 2;
  const { config, queueUrl, dlqUrl } = target;
  const clients = createAwsClients(config.aws);
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
    if (deciding) {
      if (!queueUrl || !dlqUrl) {
        io.err('SQS_OUTBOUND_QUEUE_URL and SQS_OUTBOUND_DLQ_URL are needed to act on a parked reply.');
        return 2;
      }
      const replies = new UncertainReplies({ store, parked: new DeadLetterQueue({ sqs: clients.sqs, queueUrl, dlqUrl }), logger: createLogger({ level: 'warn' }) });
      const decision = { action: command === 'resend' ? ('resend' as const) : ('mark_sent' as const), actor: `cli:${io.env.USER ?? 'unknown'}`, reason: flags['--reason']! };
      const result = await replies.decide(lineId, id, decision);
      io.out(JSON.stringify(result));
      if (result.outcome !== 'applied') io.err(DECISION_REFUSED[result.outcome]);
      else if (decision.action === 'resend' && result.redriven === 0) io.err(`The reply may be sent once more, but its job did not leave the DLQ: npm run dlq -- redrive ${result.parked[0] ?? '<id>'} --queue outbound`);
      return result.outcome === 'applied' ? 0 : 1;
    }
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
