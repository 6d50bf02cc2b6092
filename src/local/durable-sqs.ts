import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CHILD_SETTINGS_VARIABLE, type DurableSqsChildSettings } from './durable-sqs-server';

export interface QueueDefinition {
  QueueName: string;
  Attributes: Record<string, string>;
}

export interface SqsStandIn {
  /** The port it listens on (kept across stop/start, so queue URLs stay valid). */
  readonly port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The embedded default's SQS: fauxqs, which keeps queues and messages (in flight too, with their
 * receipt handles) in SQLite under `<dataDir>/sqs` and holds FIFO groups back as SQS does. It runs in
 * a child process: fauxqs is ESM-only and needs Node ≥ 22.13 (node:sqlite), and its synchronous
 * fsyncs then stall that process's event loop, not the gateway's.
 */
export async function startDurableSqs(options: { dataDir: string; host: string; port?: number; queues: QueueDefinition[] }): Promise<SqsStandIn> {
  const dataDir = join(options.dataDir, 'sqs');
  mkdirSync(dataDir, { recursive: true });
  let port = options.port ?? 0;
  let child: ChildProcess | undefined;
  const queues = options.queues.map((q) => ({ name: q.QueueName, attributes: q.Attributes }));

  const start = async () => {
    const settings: DurableSqsChildSettings = { dataDir, host: options.host, port, queues };
    const started = fork(join(__dirname, 'durable-sqs-server.js'), [], {
      env: { ...process.env, [CHILD_SETTINGS_VARIABLE]: JSON.stringify(settings) },
      // node:sqlite is stable in use but still flagged experimental: its warning would look like a fault.
      execArgv: ['--disable-warning=ExperimentalWarning'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    port = await new Promise<number>((resolve, reject) => {
      started.once('message', (message: { port: number }) => resolve(message.port));
      started.once('exit', (code) => reject(new Error(`the durable SQS stand-in exited (code ${code}) before it listened; it needs Node ≥ 22.13 (this is ${process.version})`)));
    });
    child = started;
  };

  await start();
  return {
    get port() {
      return port;
    },
    start,
    async stop() {
      const running = child;
      child = undefined;
      if (!running || running.exitCode !== null) return;
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill('SIGTERM');
      await exited;
    },
  };
}
