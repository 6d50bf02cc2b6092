import express, { type Request, type Response } from 'express';
import { Counter, type Registry } from 'prom-client';
import type { ConversationMessageReader } from '../bird/conversation-message-reader';
import { BIRD_SIGNATURE_HEADER, BIRD_TIMESTAMP_HEADER, publicRequestUrl, verifyBirdSignature } from '../bird/webhook-signature';
import { birdBodyToSendBody, birdWebhookAction, messageAction, type BirdWebhookAction } from '../bird/webhook-events';
import { GatewayError, PermanentError, RetryableError, isRetryable, reasonOf, type RetryableReason } from '../errors';
import { lineSchema, type BirdConversationsTarget, type Line } from '../lines/line';
import type { LineRegistry } from '../lines/registry';
import type { SecretResolver } from '../lines/secrets';
import { maskPhone, type Logger } from '../observability/logger';
import type { OutboundAcceptor } from './job';

export interface BirdWebhookReceiverOptions {
  lines: LineRegistry;
  secrets: SecretResolver;
  acceptor: OutboundAcceptor;
  messages: ConversationMessageReader;
  /** PUBLIC_BASE_URL: the scheme and host Bird calls; the signature covers it. */
  publicBaseUrl?: string;
  /** BIRD_WEBHOOK_MAX_SKEW_SECONDS in ms: a timestamp further from now is refused (default 5 minutes). */
  maxSkewMs?: number;
  registry: Registry;
  logger: Logger;
  /** Clock for the timestamp check (tests). */
  now?: () => number;
}

const MAX_BODY_BYTES = 1024 * 1024;
const RETRY_AFTER_SECONDS = '5';

type Answer = { status: number; body: Record<string, unknown> };

/**
 * `POST /bird/webhooks/:lineId`: Bird's webhook subscription for a conversations line. A message
 * said in the line's conversation by anyone but the contact (the AI Employee, a flow, an agent)
 * becomes one outbound job to the contact, keyed by Bird's message id so that Bird's retries (for
 * 8 hours on any non-2xx) and its created/updated pairs send it once. 2xx only once the job is
 * durable; 503 otherwise so Bird retries.
 */
export function birdWebhookRouter(options: BirdWebhookReceiverOptions): express.Router {
  const registers = [options.registry];
  const outcomes = new Counter({
    name: 'wa_ingress_bird_webhooks_total',
    help: 'Bird webhook calls by outcome (queued, duplicate, ignored, rejected, unavailable) and reason',
    labelNames: ['outcome', 'reason'],
    registers,
  });
  const signatureFailures = new Counter({
    name: 'wa_ingress_bird_webhook_signature_failures_total',
    help: 'Bird webhook calls refused for their messagebird-signature (missing, malformed, stale, mismatch)',
    labelNames: ['reason'],
    registers,
  });
  const now = options.now ?? Date.now;
  const log = options.logger.child({ component: 'bird-webhooks' });

  async function conversationsLine(lineId: string | undefined): Promise<(Line & { bird: BirdConversationsTarget }) | undefined> {
    if (!lineId || !lineSchema.shape.lineId.safeParse(lineId).success) return undefined;
    const line = await options.lines.byId(lineId);
    if (!line?.active || line.bird.transport !== 'conversations' || !line.bird.webhookSigningKey) return undefined;
    return line as Line & { bird: BirdConversationsTarget };
  }

  async function handle(req: Request): Promise<Answer> {
    const line = await conversationsLine(req.params.lineId);
    if (!line) {
      log.warn({ lineId: req.params.lineId }, 'bird webhook for an unknown line, or one without a conversations webhook signing key');
      outcomes.inc({ outcome: 'rejected', reason: 'unknown_line' });
      return { status: 404, body: { error: 'unknown_line', message: 'No active conversations line with a webhookSigningKey has this id' } };
    }
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const check = verifyBirdSignature(
      {
        signature: req.get(BIRD_SIGNATURE_HEADER),
        timestamp: req.get(BIRD_TIMESTAMP_HEADER),
        url: publicRequestUrl(options.publicBaseUrl, req.originalUrl, req.get('host')),
        rawBody: raw,
      },
      await resolveOrRetry(line.bird.webhookSigningKey!, 'bird_signing_key_unresolved', "the line's bird.webhookSigningKey"),
      { nowMs: now(), toleranceMs: options.maxSkewMs },
    );
    if (!check.ok) {
      signatureFailures.inc({ reason: check.reason });
      outcomes.inc({ outcome: 'rejected', reason: `signature_${check.reason}` });
      log.warn({ event: 'bird_signature_rejected', reason: check.reason, lineId: line.lineId, bytes: raw.length }, 'bird webhook signature rejected');
      return { status: 401, body: { error: 'invalid_signature', message: `messagebird-signature: ${check.reason}` } };
    }

    let action: BirdWebhookAction = birdWebhookAction(raw, line.bird.channelId, now());
    if (action.action === 'fetch') {
      const message = await options.messages.get({
        workspaceId: line.bird.workspaceId,
        accessKey: await resolveOrRetry(line.bird.accessKey, 'bird_access_key_unresolved', "the line's bird.accessKey"),
        conversationId: action.conversationId,
        messageId: action.messageId,
      });
      action = messageAction(message, action.to, now());
    }
    if (action.action !== 'send') {
      const reason = action.action === 'ignore' ? action.reason : 'no_message';
      outcomes.inc({ outcome: 'ignored', reason });
      log.debug({ lineId: line.lineId, reason }, 'bird webhook ignored');
      return { status: 200, body: { status: 'ignored', reason } };
    }

    const body = birdBodyToSendBody(action.message);
    if (!body) return unsendable(line.lineId, action.messageId, 'body.type: not text, image, file or location');
    let accepted;
    try {
      // The acceptor checks the body against the send-body schema.
      accepted = await options.acceptor.accept({ lineId: line.lineId, to: action.to, idempotencyKey: `bird:${action.messageId}`, body, source: 'bird_webhook' });
    } catch (error) {
      if (error instanceof PermanentError && error.reason !== 'idempotency_key_reused') return unsendable(line.lineId, action.messageId, error.message);
      throw error;
    }
    outcomes.inc({ outcome: accepted.duplicate ? 'duplicate' : 'queued', reason: '' });
    log.info(
      { lineId: line.lineId, outboundId: accepted.id, messageId: action.messageId, to: maskPhone(action.to), duplicate: accepted.duplicate },
      'bird message queued for WhatsApp',
    );
    return { status: 200, body: { status: accepted.duplicate ? 'duplicate' : 'queued', id: accepted.id } };
  }

  /**
   * A secret reference that does not resolve (a variable or secret not there yet) is a
   * configuration an operator fixes: answering 200 would end Bird's retries and drop the reply.
   */
  async function resolveOrRetry(ref: string, reason: RetryableReason, what: string): Promise<string> {
    try {
      return await options.secrets.resolve(ref);
    } catch (error) {
      if (isRetryable(error)) throw error;
      throw new RetryableError(reason, `${what} does not resolve (${reasonOf(error)}); Bird retries while it is fixed`, { cause: error });
    }
  }

  /** Bird retrying the same message cannot make it sendable: acknowledge, count and say why. */
  function unsendable(lineId: string, messageId: string, problem: string): Answer {
    outcomes.inc({ outcome: 'ignored', reason: 'unsendable' });
    log.warn({ event: 'bird_message_unsendable', lineId, messageId, problem }, 'bird message cannot be sent to WhatsApp; acknowledged without sending');
    return { status: 200, body: { status: 'ignored', reason: 'unsendable', problem } };
  }

  const router = express.Router();
  router.post('/bird/webhooks/:lineId', express.raw({ type: () => true, limit: MAX_BODY_BYTES }), (req, res: Response) => {
    handle(req).then(
      (answer) => res.status(answer.status).json(answer.body),
      (error: unknown) => {
        if (error instanceof PermanentError && error.reason === 'idempotency_key_reused') {
          // The same Bird message id came back with another body (an edit): the first one is queued.
          outcomes.inc({ outcome: 'duplicate', reason: 'changed' });
          log.warn({ lineId: req.params.lineId, reason: error.reason }, 'bird message seen before with another body; the first is kept');
          return res.status(200).json({ status: 'duplicate' });
        }
        const reason = error instanceof GatewayError ? error.reason : 'unexpected_error';
        if (!isRetryable(error)) {
          outcomes.inc({ outcome: 'ignored', reason });
          log.error({ err: error, lineId: req.params.lineId, reason }, 'bird webhook could not be handled; acknowledged so Bird stops retrying');
          return res.status(200).json({ status: 'ignored', reason });
        }
        outcomes.inc({ outcome: 'unavailable', reason });
        log.error({ err: error, lineId: req.params.lineId, reason, event: 'bird_webhook_unavailable' }, 'bird webhook not made durable; answering 503 so Bird retries');
        res.setHeader('Retry-After', RETRY_AFTER_SECONDS);
        res.status(503).json({ error: 'unavailable', reason, message: 'Not queued; retry later' });
      },
    );
  });
  return router;
}
