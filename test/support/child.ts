import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { standInEnvironment } from '../../src/local/aws-standins';
import type { AwsHarness } from './aws';

export const MAIN_JS = resolve(__dirname, '../../dist/main.js');

export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => done(port));
    });
  });
}

/** The environment a production deployment gives the gateway, pointed at the test's stand-ins. */
export function productionLikeEnv(aws: AwsHarness, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    ...standInEnvironment(aws.standIns),
    S3_BUCKET: aws.names.bucket,
    DYNAMODB_LINES_TABLE: aws.names.linesTable,
    DYNAMODB_DEDUPE_TABLE: aws.names.dedupeTable,
    DYNAMODB_CONTACTS_TABLE: aws.names.contactsTable,
    // The Meta watcher would call GRAPH_API_BASE_URL (by default the real Graph): on only where a test asks.
    META_WATCH_INTERVAL_SECONDS: '0',
    ...extra,
  };
}

/** What `npm start` (the embedded default) gets on a fresh DATA_DIR: free ports, nothing AWS. */
export async function embeddedDefaultEnv(dataDir: string, extra: Record<string, string> = {}): Promise<NodeJS.ProcessEnv> {
  return {
    PATH: process.env.PATH,
    DATA_DIR: dataDir,
    PORT: String(await freePort()),
    CONSOLE_PORT: String(await freePort()),
    LOG_LEVEL: 'info',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...extra,
  };
}

export interface Child {
  process: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Run the built entry point (`npm test` builds dist/ first) as the container would. */
export function startMain(role: string, env: NodeJS.ProcessEnv): Child {
  if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run \`npm run build\` (npm test does)`);
  const child = spawn(process.execPath, [MAIN_JS, role], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.on('exit', (code, signal) => done({ code, signal })),
  );
  return { process: child, output: () => output, exited };
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
