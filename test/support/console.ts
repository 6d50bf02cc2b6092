import { join } from 'node:path';
import { startConsole, type RunningConsole } from '../../src/console/server';
import { InboundJournal } from '../../src/journal/inbound-journal';
import { JournalBus } from '../../src/journal/journal-bus';
import { LatencyReader } from '../../src/journal/latency-reader';
import { DynamoProblemStore } from '../../src/watch/problem-store';
import { OutboundJournal } from '../../src/journal/outbound-journal';
import { DynamoOutboundStore } from '../../src/outbound/dynamo-outbound-store';
import { UncertainReplies } from '../../src/outbound/uncertain-replies';
import { DeadLetterQueue } from '../../src/queue/dlq';
import { DynamoLineStore } from '../../src/lines/store';
import { capturedLogger } from './logs';
import { ContactStates, DynamoContactStore } from '../../src/conversation';
import { createRegistry } from '../../src/observability/metrics';
import { ensureResources } from '../../src/aws/resources';
import { DynamoErasureStore, ErasureRunner, ErasureService, erasureSteps } from '../../src/privacy/erasure';

const ERASURES_TABLE = 'erasures';
import { APP_SECRET } from './ingress';
import { lineFor, startWorkerRig, type RemoteStandIns, type WorkerRig, type WorkerRigOptions } from './worker';

/** The send API key of line-doc in a console rig with replies. */
export const OUTBOUND_KEY = 'console-outbound-key-0123456789';

export const CONSOLE_TOKEN = 'console-token-under-test-0123456789';
/** The page as `npm run build` leaves it: `npm test` builds before jest. */
export const BUILT_ASSETS = join(__dirname, '../../dist/console/public');

export interface ConsoleRig {
  rig: WorkerRig;
  console: RunningConsole;
  bus: JournalBus;
  /** `${console origin}/console/api/` + path, with the bearer unless told otherwise. */
  api(path: string, init?: RequestInit & { bearer?: boolean }): Promise<Response>;
  logs: ReturnType<typeof capturedLogger>;
  stop(): Promise<void>;
}

/**
 * A worker rig (ingress, worker, real stand-ins) with the console on its own port, sharing the
 * worker's journal bus; with `outbound`, also the send API, the sender and the outbound journal
 * (line-doc takes OUTBOUND_KEY, and the Graph stand-in posts its status webhooks to the ingress).
 */
export async function startConsoleRig(remote: RemoteStandIns, options: WorkerRigOptions & { heartbeatMs?: number; erasures?: boolean } = {}): Promise<ConsoleRig> {
  const bus = new JournalBus();
  const lines = options.outbound
    ? (options.lines ?? [{ ...lineFor('doc', remote.bird.flowUrl()), outboundKeys: [OUTBOUND_KEY] }, lineFor('pywa', remote.bird.flowUrl()), lineFor('third', remote.bird.flowUrl())])
    : options.lines;
  const rig = await startWorkerRig(remote, { ...options, lines, journalBus: bus });
  if (options.outbound) remote.graph.messages.setWebhookTarget(`${rig.ingress.url}/webhooks/whatsapp`, APP_SECRET);
  const { standIns } = rig.aws;
  const logs = capturedLogger('info');
  const { documents } = rig.aws.clients;
  const tableName = rig.config.dynamodb.dedupeTable;
  const outboundDlq = options.outbound
    ? new DeadLetterQueue({ sqs: rig.aws.clients.sqs, queueUrl: standIns.outboundQueueUrl, dlqUrl: standIns.outboundDlqUrl, waitTimeSeconds: 0, holdSeconds: 5 })
    : undefined;
  // Erasures from the console, run by a runner in this process (as in the `all` role).
  let runner: ErasureRunner | undefined;
  let erasures: ErasureService | undefined;
  if (options.erasures) {
    await ensureResources(rig.aws.clients, { ...rig.aws.names, erasuresTable: ERASURES_TABLE });
    const store = new DynamoErasureStore({ documents, tableName: ERASURES_TABLE });
    const steps = erasureSteps({ ...rig.config, dynamodb: { ...rig.config.dynamodb, outboundTable: rig.aws.names.outboundTable } }, rig.aws.clients);
    const erasureRunner = new ErasureRunner({ store, steps, logger: logs.logger, pollMs: 200 });
    erasures = new ErasureService({ store, stepNames: steps.map((step) => step.name), logger: logs.logger, onAccepted: () => erasureRunner.kick() });
    erasureRunner.start();
    runner = erasureRunner;
  }
  const running = await startConsole({
    port: 0,
    host: '127.0.0.1',
    token: CONSOLE_TOKEN,
    sessionHours: 1,
    journal: new InboundJournal({ documents, tableName }),
    outbound: options.outbound ? new OutboundJournal({ documents, tableName: rig.aws.names.outboundTable }) : undefined,
    lines: new DynamoLineStore({ documents, tableName: rig.config.dynamodb.linesTable }),
    queues: {
      inbound: rig.dlq,
      outbound: outboundDlq,
    },
    uncertainReplies: outboundDlq
      ? new UncertainReplies({ store: new DynamoOutboundStore({ documents, tableName: rig.aws.names.outboundTable, retentionDays: 14, journalBus: bus }), parked: outboundDlq, logger: logs.logger })
      : undefined,
    bus,
    localFeed: true,
    problems: new DynamoProblemStore({ documents, tableName }),
    latency: new LatencyReader({ documents, dedupeTable: tableName, outboundTable: options.outbound ? rig.aws.names.outboundTable : undefined }),
    media: { s3: rig.aws.clients.s3, bucket: rig.config.s3.bucket },
    logger: logs.logger,
    erasures,
    contacts: new ContactStates({ store: new DynamoContactStore({ documents, tableName: rig.config.dynamodb.contactsTable }), registry: createRegistry({ defaultMetrics: false }), cacheMs: 0 }),
    assetsDir: BUILT_ASSETS,
    heartbeatMs: options.heartbeatMs,
  });
  const origin = running.url.replace(/\/console\/$/, '');
  return {
    rig,
    console: running,
    bus,
    logs,
    api(path, init = {}) {
      const headers = new Headers(init.headers);
      if (init.bearer !== false && !headers.has('authorization')) headers.set('authorization', `Bearer ${CONSOLE_TOKEN}`);
      return fetch(`${origin}/console/api/${path}`, { ...init, headers });
    },
    async stop() {
      await runner?.stop();
      await running.close();
      await rig.stop();
    },
  };
}
