import { handleWhen, retry } from 'cockatiel';
import { EqualJitterBackoff } from '../resilience/backoff';
import type { DedupeStore, EventLease } from '../dedupe/dedupe-store';
import { RetryableError, isRetryable, reasonOf, type FailureReason, type PermanentError } from '../errors';
import type { Line } from '../lines/line';
import { journalFacts, step, UNROUTED_LINE, type JourneyStep } from '../journal/journey';
import type { WhatsAppEvent } from '../meta/event';
import type { Logger } from '../observability/logger';
import type { DlqParker } from '../queue/dlq';
import type { ReceivedMessage } from '../queue/message';
import type { EventOutcome, MessageHandling } from './message-handling';

/**
 * The at-most-once bookkeeping of one event: claim its key, and end the claim as COMPLETED (Bird
 * has it), released (retry later) or PARKED (in the DLQ, once). Each end carries the attempt's
 * journey steps in the same write.
 */
export class EventClaims {
  /** Marking COMPLETED after Bird accepted is retried in place: giving up there means a second delivery later. */
  private readonly completion = retry(handleWhen(isRetryable), { maxAttempts: 3, backoff: new EqualJitterBackoff({ initialDelayMs: 100, maxDelayMs: 1000 }) });

  constructor(private readonly options: { dedupe: DedupeStore; parker: DlqParker }) {}

  /** The lease, or the outcome when the event is not ours to handle now. */
  async claim(handling: MessageHandling, event: WhatsAppEvent, log: Logger, line?: Line): Promise<{ lease: EventLease } | EventOutcome> {
    let claim;
    try {
      claim = await this.options.dedupe.claim(event.key, { redrive: handling.redriveKey !== undefined, journal: this.journalFor(handling, event, line) });
    } catch (error) {
      return this.retryFor(error, log);
    }
    switch (claim.outcome) {
      case 'claimed':
        return { lease: claim.lease };
      case 'duplicate':
        log.debug('duplicate event skipped');
        await this.noteDuplicate(event.key, log);
        return { result: 'duplicate' };
      case 'parked':
        log.debug({ reason: claim.reason }, 'event already parked in the DLQ; not parked again');
        await this.noteDuplicate(event.key, log, { while: 'parked' });
        return { result: 'skipped' };
      case 'busy':
        // Another worker holds it (Meta sent the payload twice at once): look again once its lease ends.
        return { result: 'retry', reason: 'event_in_progress', delayMs: Math.max(1000, claim.leaseUntil - Date.now()) };
    }
  }

  /**
   * Bird has the event (or, `not_forwarded`, the line keeps it from Bird and its work is done): from
   * here on the claim is never given back, or a retry would deliver it again.
   */
  async complete(lease: EventLease, line: Line, log: Logger, steps: JourneyStep[], result: 'delivered' | 'not_forwarded' = 'delivered'): Promise<EventOutcome> {
    const done = result === 'delivered' ? 'delivered to Bird' : 'done without Bird (not forwarded)';
    try {
      await this.completion.execute(() => lease.complete(steps));
    } catch (error) {
      if (isRetryable(error)) {
        // The lease lapses by itself; only then may the message's next receive take the event again.
        log.error({ err: error }, `${done} but not marked COMPLETED; the message will be retried after the lease`);
        return { result: 'retry', reason: 'dedupe_complete_failed', delayMs: this.options.dedupe.leaseMs };
      }
      log.error({ err: error }, `${done} but the COMPLETED mark was refused`);
    }
    if (result === 'not_forwarded') return { result };
    log.info({ transport: line.bird.transport }, 'event delivered to Bird');
    return { result: 'delivered' };
  }

  /**
   * A status the line does not forward, of a message sent elsewhere: journaled once, RECORDED, with
   * no claim (one put-if-absent), so the console lists it and a retry finds it done.
   */
  async recordUnforwarded(handling: MessageHandling, event: WhatsAppEvent, line: Line): Promise<void> {
    const { facts } = this.journalFor(handling, event, line);
    await this.options.dedupe.record?.(event.key, { facts, steps: [step('not_forwarded', { forwardStatuses: line.forwardStatuses })] });
  }

  /** A failure before any claim (routing, an unforwarded status): permanent ones are claimed only to be parked, once. */
  async failUnclaimed(handling: MessageHandling, event: WhatsAppEvent, error: unknown, line?: Line): Promise<EventOutcome> {
    const log = handling.log.child({ eventKey: event.key, kind: event.kind });
    if (isRetryable(error)) return this.retryFor(error, log);
    const claimed = await this.claim(handling, event, log, line);
    if (!('lease' in claimed)) return claimed;
    return this.failClaimed(handling, event, line, claimed.lease, error, log);
  }

  /** Retryable: give the claim back at once. Permanent: to the DLQ, then PARKED, so it is parked once. */
  async failClaimed(
    handling: MessageHandling,
    event: WhatsAppEvent,
    line: Line | undefined,
    lease: EventLease,
    error: unknown,
    log: Logger,
    steps: JourneyStep[] = [],
  ): Promise<EventOutcome> {
    const release = (reason: FailureReason) =>
      lease.release([...steps, step('retried', { reason })]).catch((e: unknown) => log.warn({ err: e }, 'could not release the claim; its lease will lapse'));
    if (isRetryable(error)) {
      await release(reasonOf(error));
      return this.retryFor(error, log);
    }
    const { reason } = error as PermanentError;
    try {
      await this.parkInDlq(handling.message, event.key, error as PermanentError, log, line);
    } catch (parkError) {
      await release('dlq_unavailable');
      log.error({ err: parkError }, 'could not park the event; the message will be retried');
      return { result: 'retry', reason: 'dlq_unavailable' };
    }
    await lease
      .park(reason, [...steps, step('parked', { reason })])
      .catch((e: unknown) => log.error({ err: e }, 'parked in the DLQ but not marked PARKED: if the message comes back, the event is parked again'));
    return { result: 'parked' };
  }

  async parkInDlq(message: ReceivedMessage, eventKey: string | undefined, error: PermanentError, log: Logger, line?: Line): Promise<void> {
    const { reason } = error;
    await this.options.parker.park({ body: message.original.body, attributes: message.original.attributes, groupId: message.groupId, reason, eventKey, lineId: line?.lineId });
    log.error({ reason, lineId: line?.lineId, event: 'event_parked', detail: error.message }, 'event parked in the DLQ');
  }

  private retryFor(error: unknown, log: Logger): EventOutcome {
    const reason = reasonOf(error);
    log.warn({ err: error, reason }, 'event failed; the message will be retried');
    return { result: 'retry', reason, delayMs: error instanceof RetryableError ? error.retryAfterMs : undefined };
  }

  /** What the journal keeps with the claim: the index attributes, the normalised event, and the `claimed` step. */
  private journalFor(handling: MessageHandling, event: WhatsAppEvent, line: Line | undefined) {
    return {
      facts: {
        ...journalFacts(event, line?.lineId ?? UNROUTED_LINE, handling.receivedAt),
        requestId: handling.message.attributes.requestId,
        bytes: handling.message.body.length,
      },
      // A DLQ redrive (from the console or `npm run dlq`) names its event: the journey says so in the same write.
      steps: [
        ...(handling.redriveKey !== undefined ? [step('redriven')] : []),
        step('claimed', { receive: handling.message.receiveCount }),
      ],
    };
  }

  /** A duplicate costs no claim write (the claim was refused): one note on the record, duplicates only. */
  private async noteDuplicate(key: string, log: Logger, detail?: JourneyStep['detail']): Promise<void> {
    await this.options.dedupe.note?.(key, step('duplicate', detail), 'duplicates').catch((error: unknown) => log.warn({ err: error }, 'could not record the duplicate on the journey'));
  }
}
