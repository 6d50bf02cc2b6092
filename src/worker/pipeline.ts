import { handleWhen, retry } from 'cockatiel';
import { EqualJitterBackoff } from '../resilience/backoff';
import { Counter, type Registry } from 'prom-client';
import type { BirdAnswer, BirdClient } from '../bird';
import type { DedupeStore, EventLease } from '../dedupe/dedupe-store';
import {
  PermanentError,
  RetryableError,
  isRetryable,
  reasonOf,
  type FailureReason,
  type RetryableReason,
  type UnfixableMediaReason,
} from '../errors';
import type { DeliveredMedia } from '../bird';
import { resolveBirdTarget } from '../lines/admin';
import type { Line } from '../lines/line';
import type { LineRegistry } from '../lines/registry';
import type { SecretResolver } from '../lines/secrets';
import type { MediaStore } from '../media';
import { journalFacts, step, UNROUTED_LINE, type JourneyStep } from '../journal/journey';
import { inTimestampOrder } from '../meta/conversation';
import { envelopeToEvents } from '../meta/envelope';
import { errorEventKey } from '../meta/event-key';
import { buildFlowBody } from '../bird/flow-request';
import type { TurnBuffer } from './turns/turn-buffer';
import { presenceTarget, turnEvents } from './turns/turn-message';
import type { WhatsAppEvent } from '../meta/event';
import { maskPhone, type Logger } from '../observability/logger';
import type { DlqParker } from '../queue/dlq';
import type { ReceivedMessage } from '../queue/message';
import type { HandlerContext, HandlerOutcome } from '../queue/poller';
import type { PresenceSignal } from '../outbound/presence';
import type { ReplyScheduler } from '../outbound/flow-replies';
import { MediaStep } from './media-step';
import { LineRouter, type Route } from './router';
import type { OutboundStatusSettler } from '../outbound/status-settler';

export interface PipelineOptions {
  lines: LineRegistry;
  secrets: SecretResolver;
  dedupe: DedupeStore;
  media: MediaStore;
  bird: BirdClient;
  parker: DlqParker;
  /** Settles the records of replies the gateway sent from their status webhooks (src/outbound). */
  outboundStatuses?: OutboundStatusSettler;
  /** Conversation turns (lines with `turn`); without it every message is delivered alone. */
  turns?: TurnBuffer;
  /** Global Graph token (WHATSAPP_ACCESS_TOKEN) for lines without their own. */
  defaultAccessToken?: string;
  /** Read receipt and typing indicator once Bird has a message (best effort, never fails the event). */
  presence?: PresenceSignal;
  /** A Flow's synchronous `replies`, made durable before the event is COMPLETED. */
  replies?: ReplyScheduler;
  logger: Logger;
  registry: Registry;
}

/** `skipped`: parked earlier (it is parked once), or not the event a redrive is for. */
type EventOutcome = { result: 'delivered' | 'duplicate' | 'parked' | 'skipped' } | { result: 'retry'; delayMs?: number; reason: FailureReason };


/** What one message's events share while they are handled. */
interface Turn {
  message: ReceivedMessage;
  receivedAt: string;
  /** Set on a DLQ redrive: the one event key of the payload to deliver (see REDRIVE_ATTRIBUTES). */
  redriveKey?: string;
  signal?: AbortSignal;
  log: Logger;
}

/** One event sent to several lines: a retry wins (the message comes back), then parked, delivered, duplicate, skipped. */
function combinedOutcome(outcomes: EventOutcome[]): EventOutcome {
  const retry = outcomes.find((o) => o.result === 'retry');
  if (retry) return retry;
  for (const result of ['parked', 'delivered', 'duplicate'] as const) if (outcomes.some((o) => o.result === result)) return { result };
  return { result: 'skipped' };
}

/**
 * The worker's handler: one SQS message → its events → for each, route → claim → media → deliver →
 * complete. The message is deleted only when every event is COMPLETED, PARKED or skipped; any
 * retryable failure returns the whole message to the queue, where dedupe skips the events already
 * completed or parked. A DLQ redrive (REDRIVE_ATTRIBUTES) delivers only the event it names.
 */
export class EventPipeline {
  private readonly events: Counter<'kind' | 'outcome'>;
  private readonly router: LineRouter;
  private readonly media: MediaStep;
  /** Marking COMPLETED after Bird accepted is retried in place: giving up there means a second delivery later. */
  private readonly completion = retry(handleWhen(isRetryable), { maxAttempts: 3, backoff: new EqualJitterBackoff({ initialDelayMs: 100, maxDelayMs: 1000 }) });

  constructor(private readonly options: PipelineOptions) {
    this.router = new LineRouter(options.lines);
    this.media = new MediaStep(options);
    this.events = new Counter({
      name: 'wa_ingress_worker_events_total',
      help: 'Events handled by the worker, by kind and outcome (delivered, duplicate, parked, skipped, retry)',
      labelNames: ['kind', 'outcome'],
      registers: [options.registry],
    });
  }

  readonly handle = async (message: ReceivedMessage, context: HandlerContext = {}): Promise<HandlerOutcome> => {
    const log = this.options.logger.child({ messageId: message.messageId, requestId: message.attributes.requestId });
    let payload: unknown;
    try {
      payload = JSON.parse(message.body.toString('utf8'));
    } catch {
      await this.parkInDlq(message, undefined, new PermanentError('payload_not_json', 'The queued body is not JSON'), log);
      return { action: 'delete' };
    }
    const turn: Turn = {
      message,
      receivedAt: message.attributes.receivedAt ?? new Date().toISOString(),
      redriveKey: message.attributes.eventKey,
      signal: context.signal,
      log,
    };
    let retryDelayMs: number | undefined;
    let retryReason: FailureReason | undefined;
    let redriveFound = false;
    // In Meta's timestamp order (ties in payload order): a conversation's events reach Bird as they happened.
    // A cut conversation turn (src/worker/turns) comes back through here as one `turn` event.
    for (const event of inTimestampOrder(turnEvents(payload) ?? envelopeToEvents(payload).map((e) => this.keyedForMessage(e, message)))) {
      const outcome: EventOutcome = turn.signal?.aborted ? { result: 'retry', reason: 'shutting_down' } : await this.handleEvent(turn, event);
      this.events.inc({ kind: event.kind, outcome: outcome.result });
      if (outcome.result !== 'skipped') redriveFound = true;
      if (outcome.result === 'retry') {
        retryReason ??= outcome.reason;
        retryDelayMs = Math.max(retryDelayMs ?? 0, outcome.delayMs ?? 0);
      }
    }
    if (turn.redriveKey !== undefined && !redriveFound) log.warn({ eventKey: turn.redriveKey }, 'redriven message: its event was not delivered (already done, or not in the payload)');
    if (retryReason === undefined) return { action: 'delete' };
    return { action: 'retry', reason: retryReason, ...(retryDelayMs ? { delaySeconds: Math.ceil(retryDelayMs / 1000) } : {}) };
  };

  private async handleEvent(turn: Turn, event: WhatsAppEvent): Promise<EventOutcome> {
    const isRedriven = (key: string) => turn.redriveKey === undefined || turn.redriveKey === key || turn.redriveKey === event.key;
    let routes: Route[];
    try {
      routes = await this.router.route(turn.message, event);
    } catch (error) {
      if (!isRedriven(event.key)) return { result: 'skipped' };
      return this.failUnclaimed(turn, event, error);
    }
    const chosen = routes.filter((route) => isRedriven(route.event.key));
    const outcomes: EventOutcome[] = [];
    for (const route of chosen) outcomes.push(await this.deliverToLine(turn, route));
    return combinedOutcome(outcomes);
  }

  private async deliverToLine(turn: Turn, { event, line }: Route): Promise<EventOutcome> {
    const log = turn.log.child({ eventKey: event.key, kind: event.kind, phoneNumberId: maskPhone(event.phoneNumberId), lineId: line.lineId });
    const claimed = await this.claim(turn, event, log, line);
    if (!('lease' in claimed)) return claimed;
    const { lease } = claimed;
    // The journey of this attempt, written with the lease's final write (complete, park or release).
    const steps: JourneyStep[] = [];
    lease.keepAlive({
      onLost: () => log.warn('dedupe lease lost while working on the event'),
      onError: (error) => log.warn({ err: error }, 'could not extend the dedupe lease'),
    });
    try {
      await this.untilAborted(turn.signal, async () => {
        // A status of one of our replies settles its record first, and Bird learns which reply it was.
        const outbound = event.kind === 'status' ? await this.options.outboundStatuses?.settle(line.lineId, event) : undefined;
        const delivered = await this.media.signTurn(outbound ? { ...event, outbound } : event);
        const media = await this.media.fetch(delivered, line, turn.receivedAt);
        if ('stored' in media && media.stored) steps.push(step('media_stored', { key: media.stored.s3Key, size: media.stored.size, type: media.stored.mimeType }));
        // Another worker may own the event now: let it deliver, and look again later.
        if (lease.lost) throw new RetryableError('dedupe_lease_lost', 'The claim lapsed while fetching media; the event was not delivered');
        const started = Date.now();
        const answer = await this.deliver(turn, delivered, line, 'error' in media ? { mediaError: media.error } : { media: media.stored });
        steps.push(step('delivered', { transport: answer ? line.bird.transport : 'turn_buffer', status: answer?.status, ms: Date.now() - started }));
        // Held for its turn: Bird has not seen it yet, so no read mark, no typing, no replies.
        if (!answer) return;
        // Read and typing go out before the replies are queued, so the indicator does not outlive them
        // (for a turn: its last message).
        this.options.presence?.messageHandedToBird(line, presenceTarget(event));
        // Before COMPLETED: if this fails the event is retried, and the same keys dedupe what was queued.
        await this.options.replies?.schedule({ line, event, answer });
      });
    } catch (error) {
      return this.failClaimed(turn, event, line, lease, error, log, steps);
    }
    return this.complete(lease, line, log, [...steps, step('completed')]);
  }

  /** What the journal keeps with the claim: the index attributes, the normalised event, and the `claimed` step. */
  private journalFor(turn: Turn, event: WhatsAppEvent, line: Line | undefined) {
    return {
      facts: {
        ...journalFacts(event, line?.lineId ?? UNROUTED_LINE, turn.receivedAt),
        requestId: turn.message.attributes.requestId,
        bytes: turn.message.body.length,
      },
      // A DLQ redrive (from the console or `npm run dlq`) names its event: the journey says so in the same write.
      steps: [
        ...(turn.redriveKey !== undefined ? [step('redriven')] : []),
        step('claimed', { receive: turn.message.receiveCount }),
      ],
    };
  }

  /** A duplicate costs no claim write (the claim was refused): one note on the record, duplicates only. */
  private async noteDuplicate(key: string, log: Logger, detail?: JourneyStep['detail']): Promise<void> {
    await this.options.dedupe.note?.(key, step('duplicate', detail), 'duplicates').catch((error: unknown) => log.warn({ err: error }, 'could not record the duplicate on the journey'));
  }

  /** The lease, or the outcome when the event is not ours to handle now. */
  private async claim(turn: Turn, event: WhatsAppEvent, log: Logger, line?: Line): Promise<{ lease: EventLease } | EventOutcome> {
    let claim;
    try {
      claim = await this.options.dedupe.claim(event.key, { redrive: turn.redriveKey !== undefined, journal: this.journalFor(turn, event, line) });
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

  /** Bird has the event: from here on the claim is never given back, or a retry would deliver it again. */
  private async complete(lease: EventLease, line: Line, log: Logger, steps: JourneyStep[]): Promise<EventOutcome> {
    try {
      await this.completion.execute(() => lease.complete(steps));
    } catch (error) {
      if (isRetryable(error)) {
        // The lease lapses by itself; only then may the message's next receive take the event again.
        log.error({ err: error }, 'delivered to Bird but not marked COMPLETED; the message will be retried after the lease');
        return { result: 'retry', reason: 'dedupe_complete_failed', delayMs: this.options.dedupe.leaseMs };
      }
      log.error({ err: error }, 'delivered to Bird but the COMPLETED mark was refused');
    }
    log.info({ transport: line.bird.transport }, 'event delivered to Bird');
    return { result: 'delivered' };
  }

  /** A failure before any claim (routing): permanent ones are claimed only to be parked, once. */
  private async failUnclaimed(turn: Turn, event: WhatsAppEvent, error: unknown): Promise<EventOutcome> {
    const log = turn.log.child({ eventKey: event.key, kind: event.kind });
    if (isRetryable(error)) return this.retryFor(error, log);
    const claimed = await this.claim(turn, event, log);
    if (!('lease' in claimed)) return claimed;
    return this.failClaimed(turn, event, undefined, claimed.lease, error, log);
  }

  /** Retryable: give the claim back at once. Permanent: to the DLQ, then PARKED, so it is parked once. */
  private async failClaimed(
    turn: Turn,
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
      await this.parkInDlq(turn.message, event.key, error as PermanentError, log, line);
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

  private retryFor(error: unknown, log: Logger): EventOutcome {
    const reason = reasonOf(error);
    log.warn({ err: error, reason }, 'event failed; the message will be retried');
    return { result: 'retry', reason, delayMs: error instanceof RetryableError ? error.retryAfterMs : undefined };
  }

  /** On shutdown (the poller aborts `signal`) stop waiting: the claim is released and the message handed back. */
  private async untilAborted(signal: AbortSignal | undefined, work: () => Promise<void>): Promise<void> {
    if (!signal) return work();
    const stopped = (reason: RetryableReason) => new RetryableError(reason, 'The worker is shutting down; the event goes back to the queue');
    if (signal.aborted) throw stopped('shutting_down');
    let onAbort: () => void = () => undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(stopped('shutting_down'));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([work(), aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Error notifications are keyed per ingress request (see errorEventKey); every other key comes from the event alone. */
  private keyedForMessage(event: WhatsAppEvent, message: ReceivedMessage): WhatsAppEvent {
    const request = message.attributes.requestId ?? message.attributes.receivedAt;
    return event.kind === 'error' && request !== undefined ? { ...event, key: errorEventKey(event.key, request) } : event;
  }

  /**
   * Hands the event to the line's Bird target; a later step (durable flow replies) takes what it returns.
   * Undefined: the message joined its conversation's turn (a line with `turn`), as the flow would have
   * received it alone, and is done once buffered; its turn reaches Bird later as one `turn` event.
   */
  private async deliver(turn: Turn, event: WhatsAppEvent, line: Line, file: { media?: DeliveredMedia; mediaError?: UnfixableMediaReason }): Promise<BirdAnswer | undefined> {
    const target = await resolveBirdTarget(line, this.options.secrets);
    const delivery = { lineId: line.lineId, target, event, receivedAt: turn.receivedAt, signal: turn.signal, ...file };
    if (this.options.turns?.holds(line, event)) {
      await this.options.turns.buffer({ line, event, body: buildFlowBody(delivery) });
      return undefined;
    }
    // The signal cuts the Bird call in flight on shutdown.
    return this.options.bird.deliver(delivery);
  }

  private async parkInDlq(message: ReceivedMessage, eventKey: string | undefined, error: PermanentError, log: Logger, line?: Line): Promise<void> {
    const { reason } = error;
    await this.options.parker.park({ body: message.original.body, attributes: message.original.attributes, groupId: message.groupId, reason, eventKey, lineId: line?.lineId });
    log.error({ reason, lineId: line?.lineId, event: 'event_parked', detail: error.message }, 'event parked in the DLQ');
  }
}
