import type { BirdClient } from '../bird';
import { isRetryable, type PermanentReason } from '../errors';
import { resolveBirdTarget } from '../lines/admin';
import { forwardsToFlow, type Line } from '../lines/line';
import type { SecretResolver } from '../lines/secrets';
import type { WhatsAppEvent } from '../meta/event';
import { permanentReason } from '../meta/send-errors';
import type { Logger } from '../observability/logger';
import type { DlqParker } from '../queue/dlq';
import type { ReceivedMessage } from '../queue/message';
import type { OutboundJob } from './job-message';
import { groupIdOf } from './job-message';
import type { OutboxIndex } from './outbox-index';
import type { OutboundError } from './record';

/** The event Bird's flow gets when Meta refused a reply for good: it can react (a template after 131047). */
export function outboundFailedEvent(job: OutboundJob, line: Line, error: OutboundError, graphError?: unknown): WhatsAppEvent {
  const byPhone = /^\+?[0-9]+$/.test(job.to);
  return {
    key: `outbound_failed#${job.id}`,
    kind: 'outbound_failed',
    field: 'messages',
    wabaId: line.wabaId,
    phoneNumberId: line.phoneNumberId,
    displayPhoneNumber: line.displayPhoneNumber,
    timestamp: String(Math.floor(Date.now() / 1000)),
    contact: byPhone ? { userKey: job.to, waId: job.to.replace(/^\+/, '') } : { userKey: job.to, userId: job.to },
    error: { code: error.code, title: error.title },
    outbound: { id: job.id, idempotencyKey: job.idempotencyKey },
    raw: { type: job.body.type, source: job.source, error: (graphError as { error?: unknown } | undefined)?.error ?? null },
  };
}

/**
 * A permanent send failure, after the record says `failed`: tell the line's flow (`outbound_failed`,
 * Idempotency-Key `outbound_failed#<id>`; unless the line's forwardStatuses is `none`), then park the job in the outbound DLQ with its reason.
 * Parking comes last: a crash or a Bird failure before it leaves the job on the queue, and the next
 * attempt (the record is already `failed`) does both again; Bird dedupes the event by its key.
 */
export class OutboundFailureReporter {
  constructor(
    private readonly deps: {
      bird: BirdClient;
      secrets: SecretResolver;
      parker: DlqParker;
      logger: Logger;
      /** A parked job's record leaves the outbox: the DLQ holds the job, and only a redrive sends it. */
      outbox?: Pick<OutboxIndex, 'leave'>;
    },
  ) {}

  /**
   * Throws a retryable error when Bird or the DLQ cannot be reached: the job is retried. `reason`:
   * the parking reason when it is not Meta's code (the reply policy refused it before any Graph call).
   */
  async report(job: OutboundJob, line: Line, error: OutboundError, message: ReceivedMessage, graphError?: unknown, reason?: PermanentReason): Promise<void> {
    const log = this.deps.logger.child({ lineId: line.lineId, outboundId: job.id });
    // A line with `forwardStatuses: none` is not told: the reply is still parked, and visible there.
    if (forwardsToFlow(line.forwardStatuses, 'outbound_failed')) await this.tell(job, line, error, log, graphError);
    await this.park(job, message, reason ?? permanentReason(error.code), line.lineId);
  }

  private async tell(job: OutboundJob, line: Line, error: OutboundError, log: Logger, graphError: unknown): Promise<void> {
    try {
      const target = await resolveBirdTarget(line, this.deps.secrets);
      await this.deps.bird.deliver({ lineId: line.lineId, target, event: outboundFailedEvent(job, line, error, graphError), receivedAt: new Date().toISOString() });
    } catch (birdError) {
      if (isRetryable(birdError)) throw birdError;
      log.error({ err: birdError }, 'Bird refused the outbound_failed event; parking the reply anyway');
    }
  }

  /** Park a job that will never be sent (unknown line, a broken job) without touching Bird. */
  async park(job: Pick<OutboundJob, 'id' | 'lineId' | 'to'> | undefined, message: ReceivedMessage, reason: PermanentReason, lineId?: string): Promise<void> {
    await this.deps.parker.park({
      body: message.original.body,
      attributes: message.original.attributes,
      reason,
      eventKey: job?.id,
      lineId: lineId ?? job?.lineId,
      fifo: { groupId: job ? groupIdOf(job) : 'unparseable', deduplicationId: `park-${message.messageId}` },
    });
    // After the park, never before. When it fails (or a crash comes in between), the record stays
    // pending and a sweep enqueues it again: parked once more, a copy in the DLQ, nothing sent.
    if (job) {
      await this.deps.outbox?.leave(job.id).catch((error: unknown) => {
        this.deps.logger.warn({ err: error, outboundId: job.id }, 'a parked reply could not leave the outbox; a sweep may park a copy');
      });
    }
    this.deps.logger.error({ event: 'outbound_parked', reason, outboundId: job?.id, lineId: lineId ?? job?.lineId }, 'reply parked in the outbound DLQ');
  }
}
