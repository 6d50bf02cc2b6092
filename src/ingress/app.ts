import { createHash, randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { Counter, Histogram, type Registry } from 'prom-client';
import { lineSchema, type Line } from '../lines/line';
import type { LineRegistry } from '../lines/registry';
import type { SecretResolver } from '../lines/secrets';
import type { Logger } from '../observability/logger';
import type { PayloadQueue } from './producer';
import { contactsOf } from '../archive/archive-record';
import type { PayloadArchive } from '../archive/archive-writer';
import { inboundRoutes } from '../meta/conversation';
import { envelopeToEvents } from '../meta/envelope';
import type { ReadinessProbe } from './readiness';
import type { IngressStatusSettlement } from './status-settlement';
import { tokensEqual, verifySignature } from './signature';

export interface IngressDependencies {
  verifyToken?: string;
  appSecrets: readonly string[];
  maxBodyBytes: number;
  lines: LineRegistry;
  secrets: SecretResolver;
  queue: PayloadQueue;
  /** Every POST SQS accepted is copied here (signed original), off the 200's path. */
  archive?: PayloadArchive;
  readiness: ReadinessProbe;
  /** Statuses of our replies settled here, with no SQS message (INGRESS_SETTLES_STATUSES); absent: every payload to SQS. */
  statuses?: IngressStatusSettlement;
  registry: Registry;
  logger: Logger;
  /** More routes on this listener (the send API, Bird webhooks), mounted before the 404. */
  routes?: express.Router[];
  /** True once SIGTERM arrived: /readyz answers 503 and connections are closed after each response. */
  isDraining: () => boolean;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const RETRY_AFTER_SECONDS = '5';
const WHATSAPP_OBJECT = 'whatsapp_business_account';

type Locals = { requestId: string; log?: Logger };

/** The request's child logger, made on first use: most requests log nothing at info level. */
function requestLog(res: Response, logger: Logger): Logger {
  const locals = res.locals as Locals;
  return (locals.log ??= logger.child({ requestId: locals.requestId }));
}

function fail(res: Response, status: number, error: string, message: string): void {
  res.status(status).json({ error, message, requestId: (res.locals as Locals).requestId });
}

/** A body Meta could have sent: a JSON object with an `entry` array. */
function parseEnvelope(raw: Buffer): { object?: unknown } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  if (!Array.isArray((parsed as { entry?: unknown }).entry)) return undefined;
  return parsed as { object?: unknown };
}

export function createIngressApp(deps: IngressDependencies): express.Express {
  const registers = [deps.registry];
  const requests = new Counter({
    name: 'wa_ingress_webhook_requests_total',
    help: 'Webhook requests by route, method and status',
    labelNames: ['route', 'method', 'status'],
    registers,
  });
  const signatureFailures = new Counter({
    name: 'wa_ingress_signature_failures_total',
    help: 'POSTs refused because X-Hub-Signature-256 was missing, malformed or wrong',
    labelNames: ['reason', 'route'],
    registers,
  });
  const ignored = new Counter({
    name: 'wa_ingress_ignored_payloads_total',
    help: `Signed payloads acknowledged but not enqueued because object is not ${WHATSAPP_OBJECT}`,
    registers,
  });
  const accepted = new Counter({ name: 'wa_ingress_payloads_enqueued_total', help: 'Payloads made durable on SQS', registers });
  const enqueueSeconds = new Histogram({
    name: 'wa_ingress_enqueue_seconds',
    help: 'Time from a verified body to SQS acknowledging it',
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3],
    registers,
  });

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  // One labelled child per (route, method, status): inc() on it skips hashing the labels per request.
  const requestCounts = new Map<string, Counter.Internal>();
  const countRequest = (route: string, method: string, status: number) => {
    const key = `${route} ${method} ${status}`;
    let child = requestCounts.get(key);
    if (!child) requestCounts.set(key, (child = requests.labels({ route, method, status: String(status) })));
    child.inc();
  };

  app.use((req: Request, res: Response, next: NextFunction) => {
    const given = req.get('x-request-id');
    const requestId = given && REQUEST_ID.test(given) ? given : randomUUID();
    (res.locals as Partial<Locals>).requestId = requestId;
    res.setHeader('X-Request-Id', requestId);
    if (deps.isDraining()) res.setHeader('Connection', 'close');
    const path = req.path;
    if (path.startsWith('/webhooks/')) {
      const route = path.startsWith('/webhooks/whatsapp/') ? '/webhooks/whatsapp/:lineId' : path;
      res.on('finish', () => countRequest(route, req.method, res.statusCode));
    }
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', async (_req, res) => {
    if (deps.isDraining()) return fail(res, 503, 'draining', 'The process is shutting down');
    if (!(await deps.readiness.ready())) return fail(res, 503, 'sqs_unreachable', 'SQS does not answer');
    res.json({ status: 'ready' });
  });

  app.get('/metrics', async (_req, res) => {
    res.type(deps.registry.contentType).send(await deps.registry.metrics());
  });

  /** Resolve the per-line URL's line; answers 404 itself when the line is unknown or inactive. */
  async function lineFor(req: Request, res: Response): Promise<Line | null | undefined> {
    const lineId = req.params.lineId;
    if (lineId === undefined) return null;
    // An id no line can have costs no table read and takes no room in the cache.
    const line = lineSchema.shape.lineId.safeParse(lineId).success ? await deps.lines.byId(lineId) : undefined;
    if (!line || !line.active) {
      requestLog(res, deps.logger).warn({ lineId }, 'webhook for an unknown or inactive line');
      fail(res, 404, 'unknown_line', 'No active line with this id');
      return undefined;
    }
    return line;
  }

  const verify = async (req: Request, res: Response) => {
    const mode = req.query['hub.mode'];
    const token = req.query['hub.verify_token'];
    const challenge = req.query['hub.challenge'];
    if (typeof mode !== 'string' || typeof token !== 'string' || typeof challenge !== 'string') {
      return fail(res, 400, 'missing_parameters', 'hub.mode, hub.verify_token and hub.challenge are required');
    }
    const line = await lineFor(req, res);
    if (line === undefined) return;
    const expected = line?.verifyToken ? await deps.secrets.resolve(line.verifyToken) : deps.verifyToken;
    if (mode !== 'subscribe' || expected === undefined || !tokensEqual(token, expected)) {
      requestLog(res, deps.logger).warn({ lineId: line?.lineId, event: 'verify_rejected' }, 'webhook verification refused');
      return fail(res, 403, 'verification_failed', 'hub.mode must be subscribe and hub.verify_token must match');
    }
    requestLog(res, deps.logger).info({ lineId: line?.lineId }, 'webhook verified');
    res.status(200).type('text/plain').send(challenge);
  };

  const rawBody = express.raw({ type: () => true, limit: deps.maxBodyBytes });

  const receive = async (req: Request, res: Response) => {
    const log = () => requestLog(res, deps.logger);
    const line = await lineFor(req, res);
    if (line === undefined) return;
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const route = line ? '/webhooks/whatsapp/:lineId' : '/webhooks/whatsapp';

    const secrets = line ? [...(await Promise.all(line.appSecrets.map((s) => deps.secrets.resolve(s)))), ...deps.appSecrets] : deps.appSecrets;
    const check = verifySignature(raw, req.get('x-hub-signature-256'), secrets);
    if (!check.ok) {
      signatureFailures.inc({ reason: check.reason, route });
      log().warn({ event: 'signature_rejected', reason: check.reason, lineId: line?.lineId, bytes: raw.length }, 'webhook signature rejected');
      return fail(res, 401, 'invalid_signature', `X-Hub-Signature-256 ${check.reason === 'missing' ? 'is missing' : 'does not verify'}`);
    }

    const envelope = parseEnvelope(raw);
    if (!envelope) {
      log().warn({ lineId: line?.lineId, bytes: raw.length, event: 'payload_invalid' }, 'signed body is not a webhook envelope');
      return fail(res, 400, 'invalid_payload', 'The body must be a JSON object with an entry array');
    }
    // Acknowledge other objects so Meta does not retry them for 7 days; a missing `object` is kept (tolerant of odd payloads).
    if (envelope.object !== undefined && envelope.object !== WHATSAPP_OBJECT) {
      ignored.inc();
      log().info({ object: String(envelope.object).slice(0, 64), lineId: line?.lineId }, 'ignored payload for another object');
      return res.status(200).json({ status: 'ignored' });
    }

    const attributes: Record<string, string> = {
      receivedAt: new Date().toISOString(),
      requestId: (res.locals as Locals).requestId,
    };
    if (line) attributes.lineId = line.lineId;
    const traceparent = req.get('traceparent');
    if (traceparent && TRACEPARENT.test(traceparent)) attributes.traceparent = traceparent;

    // Only what was made durable (its only effect written, or the payload on SQS); buffered, so the 200 never waits on S3.
    const archive = () =>
      deps.archive?.add({
        receivedAt: attributes.receivedAt!,
        requestId: attributes.requestId!,
        path: req.path,
        lineId: line?.lineId,
        signature: req.get('x-hub-signature-256')!,
        body: raw,
        contacts: contactsOf(events),
      });

    const events = envelopeToEvents(envelope);
    if (deps.statuses && (await deps.statuses.settle(events, line, log))) {
      res.status(200).json({ status: 'settled' });
      archive();
      return;
    }
    attributes.bodySha256 = createHash('sha256').update(raw).digest('hex');
    const started = process.hrtime.bigint();
    try {
      // The FIFO group(s): the conversation's, and statuses in a lane of their own (ignored on a standard queue).
      await deps.queue.enqueue({ body: raw, attributes, routes: inboundRoutes(envelope, events) });
    } catch (error) {
      log().error({ err: error, lineId: line?.lineId, event: 'enqueue_failed' }, 'payload not made durable; answering 503 so Meta retries');
      res.setHeader('Retry-After', RETRY_AFTER_SECONDS);
      return fail(res, 503, 'queue_unavailable', 'The payload could not be queued; retry later');
    }
    enqueueSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    accepted.inc();
    // Per-payload success is debug: at webhook volumes, metrics and the load balancer's access log carry it.
    if (deps.logger.isLevelEnabled('debug')) log().debug({ lineId: line?.lineId, bytes: raw.length, bodySha256: attributes.bodySha256 }, 'payload enqueued');
    res.status(200).json({ status: 'queued' });
    archive();
  };

  const asyncRoute =
    (handler: (req: Request, res: Response) => Promise<unknown>) => (req: Request, res: Response, next: NextFunction) =>
      handler(req, res).catch(next);

  app.get('/webhooks/whatsapp', asyncRoute(verify));
  app.get('/webhooks/whatsapp/:lineId', asyncRoute(verify));
  app.post('/webhooks/whatsapp', rawBody, asyncRoute(receive));
  app.post('/webhooks/whatsapp/:lineId', rawBody, asyncRoute(receive));

  for (const router of deps.routes ?? []) app.use(router);

  app.use((_req: Request, res: Response) => fail(res, 404, 'not_found', 'No such route'));

  // Body-parser errors carry an HTTP status (413 too large, 400 aborted, 415 encoding); anything else is ours.
  app.use((error: Error & { status?: number; type?: string }, _req: Request, res: Response, _next: NextFunction) => {
    const log = (res.locals as Partial<Locals>).requestId !== undefined ? requestLog(res, deps.logger) : deps.logger;
    const status = error.status && error.status >= 400 && error.status < 500 ? error.status : 500;
    if (status === 413) {
      log.warn({ event: 'payload_too_large', limit: deps.maxBodyBytes }, 'webhook body over the size limit');
      return fail(res, 413, 'payload_too_large', `The body exceeds ${deps.maxBodyBytes} bytes`);
    }
    if (status < 500) {
      log.warn({ type: error.type, status }, 'bad request');
      return fail(res, status, error.type ?? 'bad_request', error.message);
    }
    // Dependencies we could not reach (lines table, secrets) are transient: Meta retries a 503.
    log.error({ err: error }, 'request failed');
    res.setHeader('Retry-After', RETRY_AFTER_SECONDS);
    fail(res, 503, 'dependency_unavailable', 'A dependency failed; retry later');
  });

  return app;
}
