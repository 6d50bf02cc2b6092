import type { AwsClients } from '../aws/clients';
import type { Config } from '../config/config';
import { InboundJournal } from '../journal/inbound-journal';
import type { JournalBus } from '../journal/journal-bus';
import { OutboundJournal } from '../journal/outbound-journal';
import type { Logger } from '../observability/logger';
import { DeadLetterQueue } from '../queue/dlq';
import { DynamoOutboundStore } from '../outbound/dynamo-outbound-store';
import { UncertainReplies } from '../outbound/uncertain-replies';
import { erasedRedriveGuard, type ErasureService } from '../privacy/erasure';
import type { LineSource } from './journal-routes';
import type { ContactStates } from '../conversation/contact-states';
import { startConsole, type RunningConsole } from './server';
import type { ProblemStore } from '../watch';
import { LatencyReader } from '../journal/latency-reader';

export { startConsole, type RunningConsole } from './server';

/** Wires the console from the configuration: the journal over the dedupe table, the DLQs this process knows, the media bucket. */
export function startConsoleFromConfig(deps: {
  config: Config;
  clients: AwsClients;
  lines: LineSource;
  bus: JournalBus;
  localFeed: boolean;
  logger: Logger;
  erasures?: ErasureService;
  problems?: Pick<ProblemStore, 'read'>;
  contacts?: ContactStates;
}): Promise<RunningConsole> {
  const { config, clients } = deps;
  if (!config.console.token) throw new Error('CONSOLE_TOKEN is required to start the console');
  const tableName = config.dynamodb.dedupeTable;
  const inbound =
    config.sqs.queueUrl && config.sqs.dlqUrl
      ? new DeadLetterQueue({
          sqs: clients.sqs,
          queueUrl: config.sqs.queueUrl,
          dlqUrl: config.sqs.dlqUrl,
          waitTimeSeconds: 0,
          holdSeconds: 20,
          refuse: erasedRedriveGuard(config, clients).refuse,
        })
      : undefined;
  const { queueUrl: outboundQueueUrl, dlqUrl: outboundDlqUrl } = config.outbound;
  const outbound =
    outboundQueueUrl && outboundDlqUrl
      ? new DeadLetterQueue({ sqs: clients.sqs, queueUrl: outboundQueueUrl, dlqUrl: outboundDlqUrl, waitTimeSeconds: 0, holdSeconds: 20 })
      : undefined;
  const uncertainReplies = outbound
    ? new UncertainReplies({
        store: new DynamoOutboundStore({ documents: clients.documents, tableName: config.dynamodb.outboundTable, retentionDays: config.outbound.retentionDays, journalBus: deps.bus }),
        parked: outbound,
        logger: deps.logger,
      })
    : undefined;
  return startConsole({
    port: config.console.port,
    token: config.console.token,
    sessionHours: config.console.sessionHours,
    journal: new InboundJournal({ documents: clients.documents, tableName }),
    outbound: outboundQueueUrl ? new OutboundJournal({ documents: clients.documents, tableName: config.dynamodb.outboundTable }) : undefined,
    lines: deps.lines,
    problems: deps.problems,
    latency: new LatencyReader({ documents: clients.documents, dedupeTable: tableName, outboundTable: outboundQueueUrl ? config.dynamodb.outboundTable : undefined }),
    queues: { inbound, outbound },
    uncertainReplies,
    bus: deps.bus,
    localFeed: deps.localFeed,
    media: { s3: clients.s3, bucket: config.s3.bucket },
    erasures: deps.erasures,
    contacts: deps.contacts,
    logger: deps.logger,
  });
}
