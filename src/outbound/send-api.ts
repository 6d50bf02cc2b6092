import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { PermanentError } from '../errors';
import type { LineRegistry } from '../lines/registry';
import type { SecretResolver } from '../lines/secrets';
import { recipientSchema } from '../meta/send-body';
import { maskPhone, type Logger } from '../observability/logger';
import { Counter, type Registry } from '../observability/metrics';
import { failV1, lineKeyAuthentication, type LineKeyLocals } from './line-key-auth';
import { InvalidOutboundError, MAX_IDEMPOTENCY_KEY_LENGTH } from './acceptor';
import type { OutboundAcceptor, OutboundBody } from './job';
import type { OutboundStore } from './outbound-store';
import { looksLikeOutboundId, toView } from './record';
import { contactHandlers, type SentCounter } from '../conversation/contact-routes';
import type { ContactStates } from '../conversation/contact-states';
import { decideReply } from '../conversation/reply-policy';

/** Meta's send bodies are small; anything larger is not a reply. */
export const SEND_API_MAX_BODY_BYTES = 64 * 1024;
const RETRY_AFTER_SECONDS = '5';

export interface SendApiDependencies {
  lines: LineRegistry;
  secrets: SecretResolver;
  acceptor: OutboundAcceptor;
  store: Pick<OutboundStore, 'get'>;
  registry: Registry;
  logger: Logger;
  /** The contact API (`/v1/lines/:lineId/contacts/:contact`), when the process keeps conversation state. */
  contacts?: ContactStates;
  /** The contact API's `sent` counts (over the outbound records' byContact index). */
  countSent?: SentCounter;
}

type Locals = LineKeyLocals;
const fail = failV1;

/**
 * Entry 1 of the outbound pipeline: `POST /v1/lines/:lineId/messages` (a Meta send body with `to`)
 * and `GET /v1/lines/:lineId/messages/:id`, both behind the line's `outboundKeys` (Bearer,
 * constant-time). Mounted on the ingress listener.
 */
export function createSendApiRouter(deps: SendApiDependencies): express.Router {
  const requests = new Counter({
    name: 'wa_ingress_send_api_requests_total',
    help: 'Send API requests by method and status',
    labelNames: ['method', 'status'],
    registers: [deps.registry],
  });
  const log = (res: Response) => (res.locals as Locals).log ?? deps.logger;
  const router = express.Router();

  router.use('/v1/lines', (req, res, next) => {
    res.on('finish', () => requests.inc({ method: req.method, status: String(res.statusCode) }));
    next();
  });

  const authenticate = lineKeyAuthentication({ lines: deps.lines, secrets: deps.secrets, logger: deps.logger, event: 'send_api_unauthorized' });

  const send = async (req: Request, res: Response) => {
    const line = (res.locals as Locals).line!;
    const header = req.get('idempotency-key');
    if (header !== undefined && (header.length === 0 || header.length > MAX_IDEMPOTENCY_KEY_LENGTH || !/^[\x21-\x7e]+$/.test(header))) {
      log(res).warn({ lineId: line.lineId, event: 'send_api_invalid' }, 'bad Idempotency-Key');
      return fail(res, 400, 'invalid_idempotency_key', `Idempotency-Key must be 1..${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters`, { field: 'Idempotency-Key' });
    }
    // Without a key the request cannot be retried safely: one is made up, and returned.
    const idempotencyKey = header ?? `auto:${randomUUID()}`;
    res.setHeader('Idempotency-Key', idempotencyKey);

    let parsed: unknown;
    try {
      parsed = JSON.parse((Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0)).toString('utf8'));
    } catch {
      log(res).warn({ lineId: line.lineId, event: 'send_api_invalid' }, 'send API body is not JSON');
      return fail(res, 400, 'invalid_json', 'The body must be a JSON object (a Meta send-message body with `to`)', { field: '(body)' });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      return fail(res, 400, 'invalid_body', 'The body must be a JSON object', { field: '(body)', issues: [{ path: '(body)', message: 'must be a JSON object' }] });
    }
    const { to, ...body } = parsed as Record<string, unknown>;
    const recipient = recipientSchema.safeParse(to);
    if (!recipient.success) {
      const message = to === undefined ? 'required' : recipient.error.issues[0]?.message ?? 'invalid';
      log(res).warn({ lineId: line.lineId, event: 'send_api_invalid', field: 'to' }, 'send API body refused');
      return fail(res, 400, 'invalid_body', `to: ${message}`, { field: 'to', issues: [{ path: 'to', message }] });
    }
    if (deps.contacts && typeof body.type === 'string' && body.type !== 'template') {
      // Refused at accept, before any record or Graph call: the caller learns now, and can send a template.
      const decision = decideReply({ source: 'api', type: body.type, state: await deps.contacts.get(line.lineId, recipient.data), now: Date.now() });
      if (decision.action === 'refuse') {
        const windowClosedAt = new Date(decision.windowClosedAt).toISOString();
        log(res).warn({ lineId: line.lineId, event: 'send_api_window_closed', to: maskPhone(recipient.data), windowClosedAt }, 'free-form send refused: the window is closed');
        return fail(res, 422, decision.reason, 'The customer service window with this contact is closed: only a template can reach them', { windowClosedAt });
      }
    }
    try {
      const accepted = await deps.acceptor.accept({ lineId: line.lineId, to: recipient.data, idempotencyKey, body: body as OutboundBody, source: 'api' });
      log(res).info({ lineId: line.lineId, outboundId: accepted.id, to: maskPhone(recipient.data), duplicate: accepted.duplicate }, 'reply accepted');
      res.status(202).json({ id: accepted.id, status: accepted.status });
    } catch (error) {
      if (error instanceof InvalidOutboundError) {
        log(res).warn({ lineId: line.lineId, event: 'send_api_invalid', fields: error.issues.map((i) => i.path) }, 'send API body refused');
        return fail(res, 400, 'invalid_body', error.message, { field: error.issues[0]?.path, issues: error.issues });
      }
      if (error instanceof PermanentError && error.reason === 'idempotency_key_reused') {
        log(res).warn({ lineId: line.lineId, event: 'idempotency_key_reused' }, 'Idempotency-Key reused with a different body');
        return fail(res, 422, 'idempotency_key_reused', 'This Idempotency-Key was used for a different message on this line', { field: 'Idempotency-Key' });
      }
      log(res).error({ err: error, lineId: line.lineId, event: 'outbound_enqueue_failed' }, 'reply not made durable; answering 503');
      res.setHeader('Retry-After', RETRY_AFTER_SECONDS);
      return fail(res, 503, 'outbound_unavailable', 'The reply could not be queued; retry with the same Idempotency-Key');
    }
  };

  const status = async (req: Request, res: Response) => {
    const line = (res.locals as Locals).line!;
    const id = req.params.id;
    const record = looksLikeOutboundId(id) ? await deps.store.get(id) : undefined;
    if (!record || record.lineId !== line.lineId) return fail(res, 404, 'not_found', 'No reply with this id on this line');
    res.json(toView(record));
  };

  const asyncRoute =
    (handler: (req: Request, res: Response, next: NextFunction) => Promise<unknown>) => (req: Request, res: Response, next: NextFunction) =>
      handler(req, res, next).catch(next);

  // Authentication comes before the body is read: an unauthenticated client never gets 64 KB parsed.
  const rawBody = express.raw({ type: () => true, limit: SEND_API_MAX_BODY_BYTES });
  router.post('/v1/lines/:lineId/messages', asyncRoute(authenticate), rawBody, asyncRoute(send));
  router.get('/v1/lines/:lineId/messages/:id', asyncRoute(authenticate), asyncRoute(status));
  if (deps.contacts) {
    const contact = contactHandlers(deps.contacts, fail, Date.now, deps.countSent);
    router.get('/v1/lines/:lineId/contacts/:contact', asyncRoute(authenticate), asyncRoute(contact.get));
    router.put('/v1/lines/:lineId/contacts/:contact/pause', asyncRoute(authenticate), rawBody, asyncRoute(contact.pause));
    router.delete('/v1/lines/:lineId/contacts/:contact/pause', asyncRoute(authenticate), asyncRoute(contact.resume));
  }

  router.use('/v1', (error: Error & { status?: number; type?: string }, _req: Request, res: Response, _next: NextFunction) => {
    if (error.status === 413) {
      log(res).warn({ event: 'payload_too_large', limit: SEND_API_MAX_BODY_BYTES }, 'send API body over the size limit');
      return fail(res, 413, 'payload_too_large', `The body exceeds ${SEND_API_MAX_BODY_BYTES} bytes`);
    }
    if (error.status && error.status >= 400 && error.status < 500) return fail(res, error.status, error.type ?? 'bad_request', error.message);
    log(res).error({ err: error }, 'send API request failed');
    res.setHeader('Retry-After', RETRY_AFTER_SECONDS);
    fail(res, 503, 'dependency_unavailable', 'A dependency failed; retry later');
  });
  return router;
}
