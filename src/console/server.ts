import express, { type Express } from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { InboundJournal } from '../journal/inbound-journal';
import type { OutboundJournal } from '../journal/outbound-journal';
import type { JournalBus } from '../journal/journal-bus';
import type { Logger } from '../observability/logger';
import type { DeadLetterQueue } from '../queue/dlq';
import type { UncertainReplies } from '../outbound/uncertain-replies';
import { CONSOLE_PATH, requireCredential, sessionRoutes } from './access';
import { ConsoleAuth } from './auth';
import { dlqRoutes, type QueueName } from './dlq-routes';
import { erasureRoutes } from './erasure-routes';
import { consoleContactRoutes } from './contact-routes';
import type { ContactStates } from '../conversation/contact-states';
import type { ErasureService } from '../privacy/erasure/erasure-service';
import { IndexTail } from './index-tail';
import { journalRoutes, type LineSource } from './journal-routes';
import { outboundRoutes } from './outbound-routes';
import { streamRoutes } from './stream-routes';
import type { ProblemStore } from '../watch';
import type { LatencyReader } from '../journal/latency-reader';

export interface ConsoleOptions {
  port: number;
  host?: string;
  token: string;
  sessionHours: number;
  journal: InboundJournal;
  /** The replies' journal, when this gateway sends replies (SQS_OUTBOUND_QUEUE_URL). */
  outbound?: OutboundJournal;
  /** An operator's resend / mark-as-sent of replies parked `send_uncertain` (needs the outbound DLQ). */
  uncertainReplies?: UncertainReplies;
  lines: LineSource;
  /** The lines' problems on Meta's side (src/watch), stored by the watcher and the worker. */
  problems?: Pick<ProblemStore, 'read'>;
  /** Per-line delivery latency for the Overview. */
  latency?: Pick<LatencyReader, 'line'>;
  queues: Partial<Record<QueueName, DeadLetterQueue>>;
  bus: JournalBus;
  /** True when a worker in this process publishes its steps on `bus`; else the live tail polls the index. */
  localFeed: boolean;
  media?: { s3: S3Client; bucket: string };
  /** Erasure of a contact from the console (with a confirmation on the page). */
  erasures?: ErasureService;
  /** Conversation state: the event detail's window and pause, pause and resume. */
  contacts?: ContactStates;
  logger: Logger;
  /** The built page (dist/console/public); tests point here after `npm run build`. */
  assetsDir?: string;
  heartbeatMs?: number;
  tailIntervalMs?: number;
}

export interface RunningConsole {
  port: number;
  url: string;
  app: Express;
  close(): Promise<void>;
}

/** The page's own policy: only this origin's scripts, styles and connections; never framed. */
const PAGE_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

export function defaultAssetsDir(): string {
  return join(__dirname, 'public');
}

export function createConsoleApp(options: ConsoleOptions): { app: Express; tail?: IndexTail } {
  const logger = options.logger.child({ component: 'console' });
  const auth = new ConsoleAuth({ token: options.token, sessionHours: options.sessionHours });
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  const tail = options.localFeed
    ? undefined
    : new IndexTail({ journal: options.journal, outbound: options.outbound, bus: options.bus, lineIds: async () => (await options.lines.list()).map((l) => l.lineId), intervalMs: options.tailIntervalMs, logger });

  const api = express.Router();
  api.use((_req, res, next) => {
    res.set({ 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
    next();
  });
  api.use(sessionRoutes(auth, logger));
  api.use(requireCredential(auth, logger));
  api.use(journalRoutes({ journal: options.journal, outbound: options.outbound, lines: options.lines, media: options.media, logger, problems: options.problems, latency: options.latency }));
  if (options.outbound) api.use(outboundRoutes({ outbound: options.outbound, lines: options.lines, decisions: options.uncertainReplies, logger }));
  api.use(dlqRoutes({ queues: options.queues, logger }));
  if (options.contacts) api.use(consoleContactRoutes({ journal: options.journal, contacts: options.contacts, logger }));
  if (options.erasures) api.use(erasureRoutes({ erasures: options.erasures, lines: options.lines, logger }));
  api.use(streamRoutes({ bus: options.bus, heartbeatMs: options.heartbeatMs, onSubscribe: tail && (() => tail.subscribe()), logger }));
  api.use((req, res) => res.status(404).json({ error: 'not_found', message: `No console API ${req.method} ${req.path}` }));
  app.use(`${CONSOLE_PATH}/api`, api);

  const assets = options.assetsDir ?? defaultAssetsDir();
  if (!existsSync(join(assets, 'index.html'))) logger.warn({ assets }, 'console page assets missing: run `npm run build`');
  app.get('/', (_req, res) => res.redirect(302, `${CONSOLE_PATH}/`));
  // Relative asset and API URLs need the trailing slash (express matches /console and /console/ alike).
  app.get(CONSOLE_PATH, (req, res, next) => (req.originalUrl.split('?')[0] === CONSOLE_PATH ? res.redirect(302, `${CONSOLE_PATH}/`) : next()));
  app.use(
    CONSOLE_PATH,
    express.static(assets, {
      index: 'index.html',
      fallthrough: true,
      setHeaders: (res) => res.set({ ...PAGE_HEADERS, 'Cache-Control': 'no-cache' }),
    }),
  );
  app.use((_req, res) => res.status(404).json({ error: 'not_found', message: `The console is at ${CONSOLE_PATH}/` }));
  return { app, tail };
}

/** The console on its own port (CONSOLE_PORT), never on the webhook listener. */
export async function startConsole(options: ConsoleOptions): Promise<RunningConsole> {
  const { app, tail } = createConsoleApp(options);
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(options.port, options.host ?? '0.0.0.0', () => resolve(s));
    s.once('error', reject);
  });
  server.keepAliveTimeout = 65_000;
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}${CONSOLE_PATH}/`,
    app,
    async close() {
      tail?.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Open live tails never end by themselves.
      server.closeAllConnections();
      await closed;
    },
  };
}
