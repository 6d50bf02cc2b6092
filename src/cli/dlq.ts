import { createAwsClients } from '../aws/clients';
import { processIo, type CliIo } from './io';
import { queueTarget } from './queue-target';
import { parseClaimCheckPointer } from '../queue/message';
import { S3ClaimCheckRefresher } from '../queue/claim-check-writer';
import { DeadLetterQueue, type DlqEntry } from '../queue/dlq';
import { erasedRedriveGuard } from '../privacy/erasure';
import { maskPhone } from '../observability/logger';

const USAGE = `Usage: npm run dlq -- <command>
  list                 messages in the DLQ: id, reason, eventKey, lineId, receivedAt, receives, bytes
  show <id>            one message with its attributes and body
  redrive <id>|--all   back to the main queue with the original body and ingress attributes, then off the DLQ
  purge --yes          delete every message in the DLQ
Reading the DLQ receives its messages: they turn invisible for up to 30 s (released when the command ends),
and each read adds one to their receive count.
  --queue outbound     any command on the outbound (replies) FIFO queue and its DLQ instead; a redriven reply is
                       sent if its record is still queued (a failed one is parked again)
Needs SQS_QUEUE_URL and SQS_DLQ_URL (SQS_OUTBOUND_QUEUE_URL and SQS_OUTBOUND_DLQ_URL with --queue outbound, and the
AWS credentials of the deployment); without them it works on the running embedded default (npm start).`;

/** Returns the exit code: 0 done, 1 the operation failed or found nothing, 2 bad usage or configuration. */
export async function runDlqCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const queueAt = argv.indexOf('--queue');
  const which = queueAt >= 0 ? argv[queueAt + 1] : 'inbound';
  if (which !== 'inbound' && which !== 'outbound') {
    io.err(`--queue takes inbound or outbound (got ${which ?? 'nothing'}).\n${USAGE}`);
    return 2;
  }
  const [command, ...args] = queueAt >= 0 ? [...argv.slice(0, queueAt), ...argv.slice(queueAt + 2)] : argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    io.out(USAGE);
    return command ? 0 : 2;
  }
  if (!['list', 'show', 'redrive', 'purge'].includes(command)) {
    io.err(`Unknown command "${command}".\n${USAGE}`);
    return 2;
  }
  if ((command === 'show' || command === 'redrive') && !args[0]) {
    io.err(`${command} needs a message id${command === 'redrive' ? ' or --all' : ''} (see \`npm run dlq -- list\`).`);
    return 2;
  }
  if (command === 'purge' && !args.includes('--yes')) {
    io.err('purge deletes every message in the DLQ for good; run it again with --yes to confirm.');
    return 2;
  }

  const target = queueTarget(io, which);
  if (!target) return 2;
  const { config, queueUrl, dlqUrl } = target;
  if (!queueUrl || !dlqUrl) {
    const names = which === 'outbound' ? ['SQS_OUTBOUND_QUEUE_URL', 'SQS_OUTBOUND_DLQ_URL'] : ['SQS_QUEUE_URL', 'SQS_DLQ_URL'];
    const missing = [!queueUrl && names[0], !dlqUrl && names[1]].filter(Boolean).join(' and ');
    io.err(`${missing} not set: the DLQ tool works on the deployed queues (set both, e.g. from the stack outputs).`);
    return 2;
  }

  const clients = createAwsClients(config.aws);
  // A redrive refreshes each claim-check object, so the redriven pointer resolves for a whole new lifecycle window.
  const claimChecks = new S3ClaimCheckRefresher({ s3: clients.s3, bucket: config.s3.bucket });
  // An erased contact's parked messages stay where they are (reason `erased`).
  const refuse = which === 'outbound' ? undefined : erasedRedriveGuard(config, clients).refuse;
  const dlq = new DeadLetterQueue({ sqs: clients.sqs, queueUrl, dlqUrl, claimChecks, refuse });
  try {
    switch (command) {
      case 'list': {
        const entries = await dlq.list();
        io.out(['id', 'reason', 'eventKey', 'lineId', 'receivedAt', 'receives', 'bytes'].join('\t'));
        for (const e of entries) {
          io.out([e.id, e.reason, e.eventKey ?? '-', e.lineId ?? '-', e.receivedAt ?? '-', e.receiveCount, e.bodyBytes].join('\t'));
        }
        io.out(`${entries.length} message(s) in the DLQ`);
        return 0;
      }
      case 'show': {
        const entry = await dlq.show(args[0] as string);
        if (!entry) {
          io.err(`No message ${args[0]} in the DLQ (or it is held by another reader for up to 30 s).`);
          return 1;
        }
        io.out(formatEntry(entry));
        return 0;
      }
      case 'redrive': {
        const result = await dlq.redrive(args[0] === '--all' ? { all: true } : { id: args[0] as string });
        for (const id of result.redriven) io.out(`redriven ${id}`);
        for (const id of result.notDeleted) io.err(`${id} was sent to the main queue but is still in the DLQ: it will flow twice (dedupe skips done events)`);
        for (const f of result.failed) io.err(`could not redrive ${f.id}: ${f.error}`);
        if (args[0] !== '--all' && result.redriven.length === 0 && result.failed.length === 0) {
          io.err(`No message ${args[0]} in the DLQ.`);
          return 1;
        }
        io.out(`${result.redriven.length} message(s) redriven`);
        return result.failed.length > 0 ? 1 : 0;
      }
      default: {
        io.out(`${await dlq.purge()} message(s) deleted from the DLQ`);
        return 0;
      }
    }
  } catch (error) {
    io.err(`DLQ ${command} failed: ${(error as Error).message}`);
    return 1;
  } finally {
    clients.destroy();
  }
}

export function formatEntry(entry: DlqEntry): string {
  const lines = [
    `id:         ${entry.id}`,
    `reason:     ${entry.reason}`,
    `eventKey:   ${entry.eventKey ?? '-'}`,
    `lineId:     ${entry.lineId ?? '-'}`,
    `receivedAt: ${entry.receivedAt ?? '-'}`,
    `parkedAt:   ${entry.parkedAt ?? '-'}`,
    // The conversation's FIFO group (kept on redrive); its contact is a phone number, so masked.
    `group:      ${entry.groupId ? maskGroup(entry.groupId) : '-'}`,
    `receives:   ${entry.receiveCount}`,
    `bytes:      ${entry.bodyBytes}`,
    'attributes:',
    ...Object.entries(entry.attributes)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, value]) => `  ${name} = ${value.StringValue ?? `<${value.DataType}>`}`),
    parseClaimCheckPointer(entry.body) ? 'body (claim-check pointer; the Meta body is in S3):' : 'body:',
  ];
  let body = entry.body;
  try {
    body = JSON.stringify(JSON.parse(entry.body), null, 2);
  } catch {
    // not JSON: print as stored
  }
  return [...lines, body].join('\n');
}

/** `<phone_number_id>:<contact>` with the contact masked like any phone number. */
export function maskGroup(groupId: string): string {
  const at = groupId.indexOf(':');
  return at < 0 ? (maskPhone(groupId) ?? '') : `${groupId.slice(0, at)}:${maskPhone(groupId.slice(at + 1))}`;
}

if (require.main === module) {
  runDlqCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error) => {
      process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
