import { join } from 'node:path';
import { startConsole, type RunningConsole } from '../../src/console/server';
import { InboundJournal } from '../../src/journal/inbound-journal';
import { JournalBus } from '../../src/journal/journal-bus';
import { JournalNotes } from '../../src/journal/journal-notes';
import { DynamoLineStore } from '../../src/lines/store';
import { capturedLogger } from './logs';
import { startWorkerRig, type RemoteStandIns, type WorkerRig, type WorkerRigOptions } from './worker';

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

/** A worker rig (ingress, worker, real stand-ins) with the console on its own port, sharing the worker's journal bus. */
export async function startConsoleRig(remote: RemoteStandIns, options: WorkerRigOptions & { heartbeatMs?: number } = {}): Promise<ConsoleRig> {
  const bus = new JournalBus();
  const rig = await startWorkerRig(remote, { ...options, journalBus: bus });
  const logs = capturedLogger('info');
  const { documents } = rig.aws.clients;
  const tableName = rig.config.dynamodb.dedupeTable;
  const running = await startConsole({
    port: 0,
    host: '127.0.0.1',
    token: CONSOLE_TOKEN,
    sessionHours: 1,
    journal: new InboundJournal({ documents, tableName }),
    notes: new JournalNotes({ documents, tableName, bus }),
    lines: new DynamoLineStore({ documents, tableName: rig.config.dynamodb.linesTable }),
    queues: { inbound: rig.dlq },
    bus,
    localFeed: true,
    media: { s3: rig.aws.clients.s3, bucket: rig.config.s3.bucket },
    logger: logs.logger,
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
      await running.close();
      await rig.stop();
    },
  };
}
