import { handleWhen, retry } from 'cockatiel';
import { isRetryable, type PermanentReason } from '../errors';
import type { Line } from '../lines/line';
import type { Logger } from '../observability/logger';
import { Counter, type Registry } from '../observability/metrics';
import type { ReceivedMessage } from '../queue/message';
import type { HandlerOutcome } from '../queue/poller';
import { EqualJitterBackoff } from '../resilience/backoff';
import type { OutboundFailureReporter } from './failure-reporter';
import type { OutboundJob } from './job-message';
import type { OutboundStore, SendFence } from './outbound-store';
import type { OutboundError, SuppressedReason } from './record';

/** One send under one claim: what the writes that end it need. */
export interface Sending {
  job: OutboundJob;
  line: Line;
  fence: SendFence;
  /** Ambiguous sends before this one (the claim's view of the record). */
  ambiguousBefore: number;
  message: ReceivedMessage;
  log: Logger;
}

const DONE: HandlerOutcome = { action: 'delete' };
/** The record belongs to a newer claim: this copy of the job comes back later and the record decides. */
const FENCED_OUT: HandlerOutcome = { action: 'retry', reason: 'claim_fenced_out' };

/**
 * Writes what one send's outcome means on its record, under the send's claim (its fence), and turns
 * it into the job's outcome. A refused write is read once: fenced out (another claim took the
 * record while this sender paused past its lease) leaves the record to the new owner; otherwise a
 * status moved the record on first, which is what a wait for a status is for.
 */
export class SendOutcomeRecorder {
  /** Recording the accept is retried in place: giving up there means waiting for a status, or a resend. */
  private readonly recording = retry(handleWhen(isRetryable), { maxAttempts: 4, backoff: new EqualJitterBackoff({ initialDelayMs: 50, maxDelayMs: 500 }) });
  private readonly parkedUncertain: Counter;
  private readonly fencedOuts: Counter<'write'>;

  constructor(
    private readonly deps: {
      store: OutboundStore;
      reporter: OutboundFailureReporter;
      /** OUTBOUND_MAX_AMBIGUOUS_RESENDS: past it, an ambiguous reply is parked `send_uncertain`. */
      maxAmbiguousResends: number;
      registry: Registry;
    },
  ) {
    const registers = [deps.registry];
    this.parkedUncertain = new Counter({
      name: 'wa_ingress_outbound_send_uncertain_total',
      help: 'Replies parked send_uncertain: their resend was ambiguous too; an operator resends or marks them sent',
      registers,
    });
    this.fencedOuts = new Counter({
      name: 'wa_ingress_outbound_fenced_out_total',
      help: 'Send outcomes refused because another sender claimed the reply while this one paused past its lease (by write)',
      labelNames: ['write'],
      registers,
    });
  }

  async accepted(sending: Sending, wamid: string): Promise<HandlerOutcome> {
    const recorded = await this.recording.execute(() => this.deps.store.markSent(sending.fence, wamid)).catch((error: unknown) => {
      // Meta has it: a status webhook will settle the record; the job is done either way.
      sending.log.error({ err: error }, 'reply accepted by Meta but not recorded as sent; its status webhooks will settle it');
      return true;
    });
    // Fenced out or not, Meta has it and this job is done.
    if (!recorded) await this.fencedOut(sending, 'sent');
    return DONE;
  }

  /**
   * An outcome Meta may or may not have taken: wait `graceMs` for a status before the next send, or,
   * once OUTBOUND_MAX_AMBIGUOUS_RESENDS resends were ambiguous too, park the reply `send_uncertain`
   * for an operator: every further send could be one more copy on the person's phone.
   */
  async ambiguous(sending: Sending, detail: string, graceMs: number): Promise<HandlerOutcome> {
    const { job, line, fence, message, log } = sending;
    const ambiguousSends = sending.ambiguousBefore + 1;
    const spent = ambiguousSends > this.deps.maxAmbiguousResends;
    if (!(await this.deps.store.markUncertain(fence, spent ? undefined : graceMs, detail))) {
      return (await this.fencedOut(sending, 'uncertain')) ? FENCED_OUT : DONE;
    }
    if (!spent) {
      log.warn({ event: 'outbound_uncertain', detail, ambiguousSends, graceMs }, 'send outcome unknown: waiting for a status before any resend');
      return { action: 'retry', delaySeconds: Math.ceil(graceMs / 1000), reason: 'send_uncertain' };
    }
    this.parkedUncertain.inc();
    log.error({ event: 'outbound_send_uncertain', detail, ambiguousSends }, 'resends spent and the outcome still unknown: parked for an operator to resend or mark as sent');
    await this.deps.reporter.park(job, message, 'send_uncertain', line.lineId);
    return DONE;
  }

  /** A clean refusal: Meta did not take it, so the claim is given back for the next attempt. */
  async release(sending: Sending, detail: string, delaySeconds: number): Promise<HandlerOutcome> {
    if (!(await this.deps.store.release(sending.fence, detail)) && (await this.fencedOut(sending, 'release'))) return FENCED_OUT;
    sending.log.info({ detail, delaySeconds, receiveCount: sending.message.receiveCount }, 'send refused for now; retrying');
    return { action: 'retry', delaySeconds, reason: detail.split(' ')[0] };
  }

  /**
   * Meta refused it for good (or the reply policy did, `reason`, before any Graph call): `failed`,
   * then Bird hears it and the job is parked.
   */
  async failed(sending: Sending, error: OutboundError, graphError: unknown, reason?: PermanentReason): Promise<HandlerOutcome> {
    if (!(await this.deps.store.markFailed(sending.fence, error)) && (await this.fencedOut(sending, 'failed'))) return FENCED_OUT;
    sending.log.warn({ event: 'outbound_failed', code: error.code, title: error.title, reason }, reason ? 'the reply policy refused the reply' : 'Meta refused the reply for good');
    await this.deps.reporter.report(sending.job, sending.line, error, sending.message, graphError, reason);
    return DONE;
  }

  /** The reply policy held it back (the contact is paused): `suppressed`, nothing sent, nobody told but the journal and the metric. */
  async suppressed(sending: Sending, reason: SuppressedReason): Promise<HandlerOutcome> {
    if (!(await this.deps.store.markSuppressed(sending.fence, reason)) && (await this.fencedOut(sending, 'suppressed'))) return FENCED_OUT;
    sending.log.info({ event: 'outbound_suppressed', reason }, 'reply not sent: the contact is paused (a human has the conversation)');
    return DONE;
  }

  private async fencedOut(sending: Sending, write: string): Promise<boolean> {
    const current = await this.deps.store.get(sending.fence.id);
    if (!current || current.attempts === sending.fence.attempt) return false;
    this.fencedOuts.inc({ write });
    sending.log.warn(
      { event: 'outbound_fenced_out', write, attempt: sending.fence.attempt, currentAttempt: current.attempts, status: current.status },
      'another sender claimed this reply while this one paused past its lease: this write is refused and the record left to it',
    );
    return true;
  }
}
