import { GatewayError, PermanentError, RetryableError } from '../errors';
import type { Line } from '../lines/line';
import type { LineRegistry } from '../lines/registry';
import type { SecretResolver } from '../lines/secrets';
import { PAIR_LIMIT_RETRY_SECONDS } from '../meta/send-errors';
import { maskPhone, type Logger } from '../observability/logger';
import { Counter, type Histogram, type Registry } from '../observability/metrics';
import { stageHistogram, stageSeconds } from '../observability/stage-latency';
import { GroupHold } from '../queue/group-hold';
import type { ReceivedMessage } from '../queue/message';
import type { HandlerOutcome, MessageHandler } from '../queue/poller';
import { exponentialBackoff } from '../resilience/backoff';
import type { OutboundFailureReporter } from './failure-reporter';
import type { GraphSendClient } from './graph-send-client';
import { decodeJob, groupIdOf, type OutboundJob } from './job-message';
import { fenceOf, type OutboundStore } from './outbound-store';
import { awaitsOperator } from './record';
import type { LineRateLimiter } from './rate-limiter';
import type { ReplyGate } from './reply-gate';
import { SendOutcomeRecorder, type Sending } from './send-outcome-recorder';

export interface OutboundSenderOptions {
  store: OutboundStore;
  lines: LineRegistry;
  secrets: SecretResolver;
  graph: GraphSendClient;
  rate: LineRateLimiter;
  reporter: OutboundFailureReporter;
  /** The pause and window check before the Graph call (absent: every reply is sent, as before conversation state). */
  gate?: ReplyGate;
  /** WHATSAPP_ACCESS_TOKEN, for lines without their own accessToken. */
  defaultAccessToken?: string;
  /** OUTBOUND_UNCERTAIN_GRACE_MS: how long an ambiguous send waits for a status before it is sent again. */
  uncertainGraceMs: number;
  /** OUTBOUND_MAX_AMBIGUOUS_RESENDS (default 1): past it, an ambiguous reply is parked `send_uncertain`. */
  maxAmbiguousResends?: number;
  /**
   * After a sender died mid-send: its statuses may sit in inbound messages that died with it and
   * come back only when their visibility lapses (and their dedupe lease with it). Default: the grace
   * plus the visibility timeout.
   */
  lapsedGraceMs?: number;
  /** OUTBOUND_SEND_TIMEOUT_MS: one Graph attempt. */
  sendTimeoutMs: number;
  /** Retry delays for clean refusals: base · 2^(attempt-1), capped. */
  retryBaseSeconds?: number;
  retryMaxSeconds?: number;
  /** The outbound poller's retry backoff: the recipient hold fixes a retried job's delay with it (GroupHold). Default 1 s, as startSender sets. */
  pollerRetryPolicy?: { baseSeconds: number; maxSeconds: number };
  logger: Logger;
  registry: Registry;
}

const DONE: HandlerOutcome = { action: 'delete' };

/** The outbound poller's backoff (startSender): 1 s, so that the sender's own delays are the ones applied. */
export const SENDER_POLLER_RETRY_POLICY = { baseSeconds: 1, maxSeconds: 1 } as const;

/**
 * The outbound queue's handler: one job → claim the record → per-line rate → Graph send → record.
 * A GroupHold keyed `<lineId>:<to>` runs one recipient's jobs one at a time, in the order they were
 * received, and the next starts only after Meta answered the previous one (real SQS FIFO holds the
 * group across processes; the local stand-in does not, so this is what keeps order there). A job
 * retried holds its recipient's later jobs back, with the worker's rule for conversations.
 */
export class OutboundSender {
  private readonly hold: GroupHold;
  private readonly retryBase: number;
  private readonly retryMax: number;
  private readonly outcomes: SendOutcomeRecorder;
  private readonly metrics: {
    sends: Counter<'outcome'>;
    resends: Counter<'cause'>;
    tokenFailures: Counter;
  };
  private readonly stages: Histogram<'stage'>;

  constructor(private readonly options: OutboundSenderOptions) {
    this.retryBase = options.retryBaseSeconds ?? 1;
    this.stages = stageHistogram(options.registry);
    this.retryMax = options.retryMaxSeconds ?? 300;
    this.hold = new GroupHold({
      retryPolicy: options.pollerRetryPolicy ?? SENDER_POLLER_RETRY_POLICY,
      heldReason: 'recipient_held',
      metricsPrefix: 'wa_ingress_outbound_sender',
      logger: options.logger,
      registry: options.registry,
    });
    this.outcomes = new SendOutcomeRecorder({ store: options.store, reporter: options.reporter, maxAmbiguousResends: options.maxAmbiguousResends ?? 1, registry: options.registry });
    const registers = [options.registry];
    this.metrics = {
      sends: new Counter({
        name: 'wa_ingress_outbound_sends_total',
        help: 'Graph send attempts by outcome (accepted, rate_limited, pair_limited, token, permanent, ambiguous, unsent)',
        labelNames: ['outcome'],
        registers,
      }),
      resends: new Counter({
        name: 'wa_ingress_outbound_uncertain_resends_total',
        help: 'Sends repeated after an ambiguous attempt (a lost response, a timeout, a 5xx, a sender that died mid-send) with no status within the grace period: the one way a reply can reach the user twice',
        labelNames: ['cause'],
        registers,
      }),
      tokenFailures: new Counter({ name: 'wa_ingress_graph_token_failures_total', help: 'Graph refused the line token on a send (190, 10, 200): alarm', registers }),
    };
  }

  /** Recipients the hold keeps state for (running, queued, or waiting for a retried job): back to 0 once they drain. */
  get heldState(): number {
    return this.hold.stateSize;
  }

  readonly handle: MessageHandler = async (message, context) => {
    const job = decodeJob(message.body.toString('utf8'));
    if (!job) {
      await this.options.reporter.park(undefined, message, 'outbound_job_invalid');
      return DONE;
    }
    return this.hold.run(groupIdOf(job), message, () => this.process(job, message).catch((error: unknown) => this.failed(job, message, error)), context?.signal);
  };

  private async process(job: OutboundJob, message: ReceivedMessage): Promise<HandlerOutcome> {
    const log = this.options.logger.child({ lineId: job.lineId, outboundId: job.id, to: maskPhone(job.to) });
    const line = await this.options.lines.byId(job.lineId);
    if (!line || !line.active) {
      // The record stays queued: registering or enabling the line and redriving sends it.
      await this.options.reporter.park(job, message, line ? 'line_inactive' : 'unrouted');
      return DONE;
    }
    const tokenRef = line.accessToken ?? this.options.defaultAccessToken;
    if (!tokenRef) {
      await this.options.reporter.park(job, message, 'graph_no_token', line.lineId);
      return DONE;
    }
    // Before the claim: a token that cannot be read must not leave a claim that looks like a lost send.
    const accessToken = await this.options.secrets.resolve(tokenRef);
    // Before the claim too: a contact table that does not answer must not leave a claim that looks like a lost send.
    const checked = await this.options.gate?.decide(job, line);
    await this.options.rate.acquire(line.lineId, line.sendRateLimit);
    const claim = await this.options.store.claim(job.id, this.options.sendTimeoutMs + this.options.uncertainGraceMs);
    if (!claim.claimed) return this.notClaimed(job, line, claim.record, message, log);
    const sending: Sending = { job, line, fence: fenceOf(claim), ambiguousBefore: claim.record.ambiguousSends ?? 0, message, log };
    if (claim.resend === 'lapsed_claim') {
      // A sender died mid-send. Its statuses may be stuck in inbound messages that died with it:
      // give them time to come back and settle the record before sending again.
      log.warn({ event: 'outbound_claim_lapsed' }, 'a sender stopped mid-send: waiting for a status before any resend');
      return this.outcomes.ambiguous(sending, 'claim lapsed: the sender stopped mid-send', this.options.lapsedGraceMs ?? this.options.uncertainGraceMs);
    }
    if (claim.resend) {
      this.metrics.resends.inc({ cause: claim.resend });
      log.warn({ event: 'outbound_uncertain_resend', cause: claim.resend, attempts: claim.record.attempts }, 'no status came for an ambiguous send: sending again');
    }
    // A resend is never suppressed or refused (its first copy may be on the phone already, and its status must
    // settle it), but it goes in the form the first went in: into a window now closed, the fallback template.
    const decision = !claim.resend ? checked ?? { action: 'send' as const } : checked?.action === 'fallback' ? checked : { action: 'send' as const };
    if (!claim.resend) this.options.gate?.count(job, decision);
    if (decision.action === 'suppress') return this.outcomes.suppressed(sending, decision.reason);
    if (decision.action === 'refuse') return this.outcomes.failed(sending, { title: decision.reason }, undefined, decision.reason);
    const body = decision.action === 'fallback' ? decision.body : job.body;

    const outcome = await this.options.graph.send({
      phoneNumberId: line.phoneNumberId,
      accessToken,
      body: { ...body, messaging_product: 'whatsapp', to: job.to, biz_opaque_callback_data: job.id },
    });
    this.metrics.sends.inc({ outcome: outcome.kind === 'refused' ? outcome.errorClass : outcome.kind });

    switch (outcome.kind) {
      case 'accepted': {
        // Delivery latency: the inbound message's receive time (a Flow's reply) → Meta accepted the reply.
        const latency = stageSeconds(claim.record.inboundReceivedAt ? Date.parse(claim.record.inboundReceivedAt) : undefined, Date.now());
        if (latency !== undefined) this.stages.observe({ stage: 'received_to_reply_sent' }, latency);
        log.info({ messageStatus: outcome.messageStatus }, 'reply sent');
        return this.outcomes.accepted(sending, outcome.wamid);
      }
      case 'ambiguous':
        return this.outcomes.ambiguous(sending, `${outcome.detail}${outcome.code ? ` ${outcome.code}` : ''}`, this.options.uncertainGraceMs);
      case 'unsent':
        return this.outcomes.release(sending, `unsent ${outcome.detail}`, this.backoff(message));
      default:
        break;
    }
    const error = { code: outcome.code, title: outcome.title };
    switch (outcome.errorClass) {
      case 'rate_limited':
        this.options.rate.slowDown(line.lineId);
        log.warn({ event: 'graph_rate_limited', code: outcome.code, rate: this.options.rate.currentRate(line.lineId, line.sendRateLimit) }, 'Meta rate limit: the line sends slower for a minute');
        return this.outcomes.release(sending, `rate_limited ${outcome.code ?? outcome.httpStatus}`, this.backoff(message));
      case 'pair_limited':
        return this.outcomes.release(sending, `pair_limited ${outcome.code}`, Math.max(PAIR_LIMIT_RETRY_SECONDS, this.backoff(message)));
      case 'token':
        this.metrics.tokenFailures.inc();
        log.error({ event: 'graph_token_rejected', code: outcome.code, httpStatus: outcome.httpStatus }, 'Graph refused the line token; fix the line accessToken (the reply is retried)');
        return this.outcomes.release(sending, `token ${outcome.code ?? outcome.httpStatus}`, Math.max(30, this.backoff(message)));
      default:
        return this.outcomes.failed(sending, error, outcome.raw);
    }
  }

  /**
   * A failure of our own (DynamoDB, a secret, the DLQ) becomes an outcome here rather than a throw,
   * so the jobs held behind it get the same delay and stay behind it. A permanent one (a line secret
   * that cannot resolve) parks the job; the record stays queued, so a redrive after the fix sends it.
   */
  private async failed(job: OutboundJob, message: ReceivedMessage, error: unknown): Promise<HandlerOutcome> {
    const log = this.options.logger.child({ lineId: job.lineId, outboundId: job.id });
    if (error instanceof PermanentError) {
      log.error({ err: error, reason: error.reason }, 'reply cannot be sent as configured; parking it');
      await this.options.reporter.park(job, message, error.reason, job.lineId);
      return DONE;
    }
    const reason = error instanceof GatewayError ? error.reason : 'unexpected_error';
    const delaySeconds = error instanceof RetryableError && error.retryAfterMs ? Math.ceil(error.retryAfterMs / 1000) : this.backoff(message);
    log.warn({ err: error, reason, delaySeconds }, 'outbound job failed; retrying');
    return { action: 'retry', delaySeconds, reason };
  }

  /** Someone else holds it, or it is settled: decide from the record. */
  private async notClaimed(
    job: OutboundJob,
    line: Line,
    record: Awaited<ReturnType<OutboundStore['get']>>,
    message: ReceivedMessage,
    log: Logger,
  ): Promise<HandlerOutcome> {
    if (!record) {
      await this.options.reporter.park(job, message, 'outbound_record_missing', line.lineId);
      return DONE;
    }
    switch (record.status) {
      case 'sent':
      case 'delivered':
      case 'read':
        log.debug({ status: record.status }, 'reply already sent: duplicate job dropped');
        return DONE;
      case 'failed':
        // A crash (or Bird) came between marking it failed and parking it: finish that.
        await this.options.reporter.report(job, line, record.error ?? { title: 'failed' }, message);
        return DONE;
      case 'uncertain':
        if (!awaitsOperator(record)) break;
        // A crash came between parking the record for an operator and parking its job: finish that.
        await this.options.reporter.park(job, message, 'send_uncertain', line.lineId);
        return DONE;
      default:
        break;
    }
    const waitMs = Math.max(1000, (record.retryAt ?? 0) - Date.now());
    return { action: 'retry', delaySeconds: Math.ceil(waitMs / 1000), reason: record.status === 'queued' ? 'claim_race' : 'send_in_progress' };
  }

  private backoff(message: ReceivedMessage): number {
    return Math.max(1, Math.round(exponentialBackoff(message.receiveCount, this.retryBase, this.retryMax)));
  }
}
