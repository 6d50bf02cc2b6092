/**
 * Child-process entry of the durable SQS stand-in (see durable-sqs.ts): fauxqs with its SQLite
 * store in DURABLE_SQS_DIR, the queues in DURABLE_SQS_QUEUES created on first start. It tells the
 * parent its port over IPC, and exits when the parent goes (even by kill -9), so a restart never
 * finds a second writer on the same store.
 */
import { Server } from 'node:net';

interface FauxqsServer {
  port: number;
  address: string;
  stop(): Promise<void>;
  setup(config: { queues: { name: string; attributes?: Record<string, string> }[] }): unknown;
}
interface Fauxqs {
  startFauxqs(options: { port: number; host: string; logger: boolean; dataDir: string }): Promise<FauxqsServer>;
}

export interface DurableSqsChildSettings {
  dataDir: string;
  host: string;
  port: number;
  queues: { name: string; attributes?: Record<string, string> }[];
}

export const CHILD_SETTINGS_VARIABLE = 'DURABLE_SQS_SETTINGS';

// fauxqs is ESM-only and this build is CommonJS: tsc would turn `import()` into `require()`.
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

/**
 * fauxqs 2.4.1 always listens on 0.0.0.0, and SQS here has no authentication: on a VM with a public
 * address anyone could read and inject payloads. This process hosts nothing else, so its one
 * listen goes to the host asked for instead.
 */
function listenOnlyOn(host: string): void {
  const listen = Server.prototype.listen as (...args: unknown[]) => Server;
  Server.prototype.listen = function listenOnHost(this: Server, ...args: unknown[]) {
    const [first] = args;
    if (first && typeof first === 'object' && (first as { host?: string }).host === '0.0.0.0') args[0] = { ...first, host };
    return listen.apply(this, args);
  } as typeof Server.prototype.listen;
}

async function main(): Promise<void> {
  const settings = JSON.parse(process.env[CHILD_SETTINGS_VARIABLE] ?? '') as DurableSqsChildSettings;
  listenOnlyOn(settings.host);
  const { startFauxqs } = (await importEsm('fauxqs')) as Fauxqs;
  const server = await startFauxqs({ port: settings.port, host: settings.host, logger: false, dataDir: settings.dataDir });
  server.setup({ queues: settings.queues });
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= server.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('disconnect', stop);
  process.send?.({ ready: true, port: server.port, address: server.address });
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`durable SQS stand-in failed to start: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}
