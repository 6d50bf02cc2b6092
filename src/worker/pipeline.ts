import { Counter, type Registry } from 'prom-client';
import type { DedupeStore } from '../dedupe/dedupe-store';
import { PermanentError, RetryableError, type FailureReason, type RetryableReason } from '../errors';
import { forwardsToFlow, type Line } from '../lines/line';
import type { LineRegistry } from '../lines/registry';
import { step, type JourneyStep } from '../journal/journey';
import { inLane, inTimestampOrder } from '../meta/conversation';
import { envelopeToEvents } from '../meta/envelope';
import { errorEventKey } from '../meta/event-key';
import { turnEvents } from './turns/turn-message';
import type { WhatsAppEvent } from '../meta/event';
import { maskPhone, type Logger } from '../observability/logger';
import type { DlqParker } from '../queue/dlq';
import type { ReceivedMessage } from '../queue/message';
import type { HandlerContext, HandlerOutcome } from '../queue/poller';
import { BirdHandOff, type BirdHandOffOptions } from './bird-hand-off';
import { EventClaims } from './event-claims';
import type { EventOutcome, MessageHandling } from './message-handling';
import { LineRouter, type Route } from './router';
import { UnforwardedStatuses } from './unforwarded-statuses';
import type { AccountEventSink } from '../watch/account-events';

export interface PipelineOptions extends BirdHandOffOptions {
  lines: LineRegistry;
  dedupe: DedupeStore;
  parker: DlqParker;
  logger: Logger;
  registry: Registry;
  /** Account webhooks raise or clear the line's problems (src/watch) at once. */
  accountEvents?: AccountEventSink;
}

/** One event sent to several lines: a retry wins (the message comes back), then parked, delivered, duplicate, skipped. */
function combinedOutcome(outcomes: EventOutcome[]): EventOutcome {
  const retry = outcomes.find((o) => o.result === 'retry');
  if (retry) return retry;
  for (const result of ['parked', 'delivered', 'not_forwarded', 'duplicate'] as const) if (outcomes.some((o) => o.result === result)) return { result };
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
  private readonly claims: EventClaims;
  private readonly handOff: BirdHandOff;
  private readonly unforwarded: UnforwardedStatuses;

  constructor(private readonly options: PipelineOptions) {
    this.router = new LineRouter(options.lines);
    this.claims = new EventClaims(options);
    this.handOff = new BirdHandOff(options);
    this.unforwarded = new UnforwardedStatuses(options);
    this.events = new Counter({
      name: 'wa_ingress_worker_events_total',
      help: 'Events handled by the worker, by kind and outcome (delivered, not_forwarded, duplicate, parked, skipped, retry)',
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
      await this.claims.parkInDlq(message, undefined, new PermanentError('payload_not_json', 'The queued body is not JSON'), log);
      return { action: 'delete' };
    }
    const handling: MessageHandling = {
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
    // A copy of a payload split by lane (statuses apart from the conversation) handles its lane's events only.
    const events = inTimestampOrder(turnEvents(payload) ?? envelopeToEvents(payload).filter(inLane(message.attributes.lane)).map((e) => this.keyedForMessage(e, message)));
    handling.events = events;
    for (const event of events) {
      const outcome: EventOutcome = handling.signal?.aborted ? { result: 'retry', reason: 'shutting_down' } : await this.handleEvent(handling, event);
      this.events.inc({ kind: event.kind, outcome: outcome.result });
      if (outcome.result !== 'skipped') redriveFound = true;
      if (outcome.result === 'retry') {
        retryReason ??= outcome.reason;
        retryDelayMs = Math.max(retryDelayMs ?? 0, outcome.delayMs ?? 0);
      }
    }
    if (handling.redriveKey !== undefined && !redriveFound) log.warn({ eventKey: handling.redriveKey }, 'redriven message: its event was not delivered (already done, or not in the payload)');
    if (retryReason === undefined) return { action: 'delete' };
    return { action: 'retry', reason: retryReason, ...(retryDelayMs ? { delaySeconds: Math.ceil(retryDelayMs / 1000) } : {}) };
  };

  private async handleEvent(handling: MessageHandling, event: WhatsAppEvent): Promise<EventOutcome> {
    const isRedriven = (key: string) => handling.redriveKey === undefined || handling.redriveKey === key || handling.redriveKey === event.key;
    let routes: Route[];
    try {
      routes = await this.router.route(handling.message, event);
    } catch (error) {
      if (!isRedriven(event.key)) return { result: 'skipped' };
      return this.claims.failUnclaimed(handling, event, error);
    }
    const chosen = routes.filter((route) => isRedriven(route.event.key));
    const outcomes: EventOutcome[] = [];
    for (const route of chosen) outcomes.push(await this.deliverToLine(handling, route));
    return combinedOutcome(outcomes);
  }

  private async deliverToLine(handling: MessageHandling, { event, line }: Route): Promise<EventOutcome> {
    const log = handling.log.child({ eventKey: event.key, kind: event.kind, phoneNumberId: maskPhone(event.phoneNumberId), lineId: line.lineId });
    const forwarded = forwardsToFlow(line.forwardStatuses, event.kind, event.status?.status);
    // Not for Bird and not a redrive: no claim, no complete; its writes are idempotent by themselves.
    if (!forwarded && handling.redriveKey === undefined) return this.applyUnclaimed(handling, event, line);
    const claimed = await this.claims.claim(handling, event, log, line);
    if (!('lease' in claimed)) return claimed;
    const { lease } = claimed;
    if (event.kind === 'account' && this.options.accountEvents) {
      // Best effort: the watcher's next round sees the same state from Graph.
      await this.options.accountEvents.noteAccountEvent(line.lineId, event).catch((error: unknown) => log.warn({ err: error }, 'could not update the line\'s problems from the account event'));
    }
    // The journey of this attempt, written with the lease's final write (complete, park or release).
    const steps: JourneyStep[] = [];
    lease.keepAlive({
      onLost: () => log.warn('dedupe lease lost while working on the event'),
      onError: (error) => log.warn({ err: error }, 'could not extend the dedupe lease'),
    });
    try {
      // A redriven status the line does not forward (it was parked, e.g. unrouted): done without Bird.
      if (!forwarded) await this.unforwarded.apply(handling, event, line);
      else await this.untilAborted(handling.signal, () => this.handOff.run(handling, event, line, lease, steps));
    } catch (error) {
      return this.claims.failClaimed(handling, event, line, lease, error, log, steps);
    }
    if (!forwarded) return this.claims.complete(lease, line, log, [...steps, step('not_forwarded', { forwardStatuses: line.forwardStatuses })], 'not_forwarded');
    return this.claims.complete(lease, line, log, [...steps, step('completed')]);
  }

  /**
   * A status the line keeps from Bird: our reply's record takes it (one conditional write); one sent
   * elsewhere is journaled once (put-if-absent), so the console still shows it.
   */
  private async applyUnclaimed(handling: MessageHandling, event: WhatsAppEvent, line: Line): Promise<EventOutcome> {
    try {
      const ours = await this.unforwarded.apply(handling, event, line);
      if (!ours) await this.claims.recordUnforwarded(handling, event, line);
    } catch (error) {
      return this.claims.failUnclaimed(handling, event, error, line);
    }
    return { result: 'not_forwarded' };
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
}
