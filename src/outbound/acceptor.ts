import type { SQSClient } from '@aws-sdk/client-sqs';
import { GatewayError, PermanentError, RetryableError } from '../errors';
import { checkSendBody, describeIssues, recipientSchema, type SendBodyIssue } from '../meta/send-body';
import { maskPhone, type Logger } from '../observability/logger';
import { sharedCounter, type Counter, type Registry } from '../observability/metrics';
import type { AcceptedOutbound, OutboundAcceptor, OutboundBody, OutboundRequest } from './job';
import { OutboundJobQueue } from './job-queue';
import type { OutboundStore } from './outbound-store';
import { MAX_SEND_BODY_BYTES, apiStatus, bodyHash, outboundId } from './record';

/** Meta's `biz_opaque_callback_data` and SQS's limits leave room for this much key. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/** A reply that can never be sent as given: the issues name each field. */
export class InvalidOutboundError extends PermanentError {
  constructor(readonly issues: SendBodyIssue[]) {
    super('invalid_send_body', `The reply is not a valid Meta send body: ${describeIssues(issues)}`);
  }
}

export interface QueueOutboundAcceptorOptions {
  store: OutboundStore;
  sqs: SQSClient;
  /** SQS_OUTBOUND_QUEUE_URL (FIFO). */
  queueUrl: string;
  /** Past this, accept() gives up with outbound_unavailable (SQS_SEND_TIMEOUT_MS). */
  timeoutMs: number;
  registry: Registry;
  logger: Logger;
}

/**
 * Makes a reply durable: a conditional put of its record, then SendMessage to the outbound FIFO
 * queue; resolves only once SQS has the job.
 *
 * Crash window: the record is written first, the job second. The record holds the send body and
 * stays in the outbox (the byPending index) until a sender claims it, so a job that never reached
 * the queue (a failed SendMessage, a crash between the two calls, a caller that never retries) is
 * enqueued again by the OutboxSweeper. A retried accept (same key, same body) that finds the record
 * still `queued` enqueues again too: within 5 minutes FIFO deduplication (id = the outbound id)
 * drops the copy, and after that the sender's claim does (the record is no longer claimable once sent).
 */
export class QueueOutboundAcceptor implements OutboundAcceptor {
  private readonly accepted: Counter<'source' | 'outcome'>;
  private readonly jobs: OutboundJobQueue;

  constructor(private readonly options: QueueOutboundAcceptorOptions) {
    this.accepted = sharedCounter(options.registry, {
      name: 'wa_ingress_outbound_accepted_total',
      help: 'Replies accepted, by source and outcome (queued, duplicate: same key and body seen before, refused)',
      labelNames: ['source', 'outcome'],
    });
    this.jobs = new OutboundJobQueue({ sqs: options.sqs, queueUrl: options.queueUrl, timeoutMs: options.timeoutMs, registry: options.registry });
  }

  async accept(request: OutboundRequest): Promise<AcceptedOutbound> {
    const normalised = this.validate(request);
    const id = outboundId(request.lineId, request.idempotencyKey);
    const hash = bodyHash(normalised.to, normalised.body);
    const created = await this.durably('record', () =>
      this.options.store.create({
        id,
        lineId: request.lineId,
        idempotencyKey: request.idempotencyKey,
        to: normalised.to,
        bodyHash: hash,
        body: normalised.body,
        type: normalised.body.type,
        source: request.source,
        ...(request.inboundReceivedAt ? { inboundReceivedAt: request.inboundReceivedAt } : {}),
      }),
    );
    if (!created.created && created.record.bodyHash !== hash) {
      this.accepted.inc({ source: request.source, outcome: 'refused' });
      throw new PermanentError('idempotency_key_reused', `Idempotency key already used on line ${request.lineId} for a different reply (id ${id})`);
    }
    const status = created.record.status;
    // Settled or being sent: nothing to enqueue. Still queued: the first enqueue may not have happened.
    if (status === 'queued') await this.durably('queue', () => this.jobs.enqueue(id, normalised));
    this.accepted.inc({ source: request.source, outcome: created.created ? 'queued' : 'duplicate' });
    if (created.created) {
      this.options.logger.debug({ lineId: request.lineId, outboundId: id, to: maskPhone(normalised.to), source: request.source }, 'reply queued');
    }
    return { id, status: apiStatus(status), duplicate: !created.created };
  }

  private validate(request: OutboundRequest): OutboundRequest {
    const issues: SendBodyIssue[] = [];
    const to = recipientSchema.safeParse(request.to);
    if (!to.success) issues.push(...to.error.issues.map((i) => ({ path: 'to', message: i.message })));
    if (request.idempotencyKey.length === 0 || request.idempotencyKey.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
      issues.push({ path: 'idempotencyKey', message: `must be 1..${MAX_IDEMPOTENCY_KEY_LENGTH} characters` });
    }
    // `to` travels beside the body, never inside it: the sender sets it.
    const { to: _ignored, ...rest } = request.body as OutboundBody & { to?: unknown };
    const body = checkSendBody(rest);
    if (!body.ok) issues.push(...body.issues);
    // The record keeps the body (the outbox): bounded, as the send API bounds what it reads.
    const bytes = Buffer.byteLength(JSON.stringify({ to: request.to, body: rest }));
    if (bytes > MAX_SEND_BODY_BYTES) issues.push({ path: 'body', message: `is ${bytes} bytes with to; at most ${MAX_SEND_BODY_BYTES}` });
    if (issues.length > 0) throw new InvalidOutboundError(issues);
    return { ...request, body: rest as OutboundBody };
  }

  /** Anything that stops the reply from becoming durable is outbound_unavailable: the caller answers 503 or retries. */
  private async durably<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof PermanentError) throw error;
      const detail = error instanceof GatewayError ? error.reason : error instanceof Error ? error.name : 'unknown';
      throw new RetryableError('outbound_unavailable', `The reply could not be made durable (${what}: ${detail}); retry later`, { cause: error });
    }
  }
}
