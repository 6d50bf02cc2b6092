import { ExponentialBackoff, handleWhen, retry } from 'cockatiel';
import { Counter, type Registry } from 'prom-client';
import type { BirdClient } from '../bird';
import type { DedupeStore } from '../dedupe/dedupe-store';
import { GatewayError, PermanentError, RetryableError, isRetryable } from '../errors';
import { resolveBirdTarget } from '../lines/admin';
import type { Line } from '../lines/line';
import type { LineRegistry } from '../lines/registry';
import type { SecretResolver } from '../lines/secrets';
import type { MediaStore } from '../media';
import { envelopeToEvents } from '../meta/envelope';
import type { WhatsAppEvent } from '../meta/event';
import { maskPhone, type Logger } from '../observability/logger';
import type { DlqParker } from '../queue/dlq';
import type { ReceivedMessage } from '../queue/message';
import type { HandlerOutcome } from '../queue/poller';

export interface PipelineOptions {
  lines: LineRegistry;
  secrets: SecretResolver;
  dedupe: DedupeStore;
  media: MediaStore;
  bird: BirdClient;
  parker: DlqParker;
  /** Global Graph token (WHATSAPP_ACCESS_TOKEN) for lines without their own. */
  defaultAccessToken?: string;
  logger: Logger;
  registry: Registry;
}

type EventOutcome = { result: 'delivered' | 'duplicate' | 'parked' } | { result: 'retry'; delayMs?: number; reason: string };

interface Route {
  line: Line;
  /** The event as delivered to this line (its key names the line when one event goes to several). */
  event: WhatsAppEvent;
}

/** One event sent to several lines: a retry wins (the message comes back), then parked, delivered, duplicate. */
function combinedOutcome(outcomes: EventOutcome[]): EventOutcome {
  const retry = outcomes.find((o) => o.result === 'retry');
  if (retry) return retry;
  for (const result of ['parked', 'delivered'] as const) if (outcomes.some((o) => o.result === result)) return { result };
  return { result: 'duplicate' };
}

/**
 * The worker's handler: one SQS message → its events → for each, route, claim, fetch media,
 * deliver to Bird, complete. The message is deleted only when every event is COMPLETED (or was a
 * duplicate) or parked in the DLQ; any retryable failure returns the whole message to the queue,
 * where dedupe skips the events that already completed.
 */
export class EventPipeline {
  private readonly events: Counter<'kind' | 'outcome'>;
  /** Marking COMPLETED after Bird accepted is retried in place: giving up there means a second delivery later. */
  private readonly completion = retry(handleWhen(isRetryable), { maxAttempts: 3, backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }) });

  constructor(private readonly options: PipelineOptions) {
    this.events = new Counter({
      name: 'wa_ingress_worker_events_total',
      help: 'Events handled by the worker, by kind and outcome (delivered, duplicate, parked, retry)',
      labelNames: ['kind', 'outcome'],
      registers: [options.registry],
    });
  }

  readonly handle = async (message: ReceivedMessage): Promise<HandlerOutcome> => {
    const log = this.options.logger.child({ messageId: message.messageId, requestId: message.attributes.requestId });
    let payload: unknown;
    try {
      payload = JSON.parse(message.body.toString('utf8'));
    } catch {
      await this.park(message, undefined, new PermanentError('payload_not_json', 'The queued body is not JSON'), log);
      return { action: 'delete' };
    }
    const receivedAt = message.attributes.receivedAt ?? new Date().toISOString();
    let retryDelayMs: number | undefined;
    let retryReason: string | undefined;
    // In order: a payload's statuses usually follow its messages, and Bird should see them that way.
    for (const event of envelopeToEvents(payload)) {
      const outcome = await this.handleEvent(message, event, receivedAt, log);
      this.events.inc({ kind: event.kind, outcome: outcome.result });
      if (outcome.result === 'retry') {
        retryReason ??= outcome.reason;
        retryDelayMs = Math.max(retryDelayMs ?? 0, outcome.delayMs ?? 0);
      }
    }
    if (retryReason === undefined) return { action: 'delete' };
    return { action: 'retry', reason: retryReason, ...(retryDelayMs ? { delaySeconds: Math.ceil(retryDelayMs / 1000) } : {}) };
  };

  private async handleEvent(message: ReceivedMessage, event: WhatsAppEvent, receivedAt: string, log: Logger): Promise<EventOutcome> {
    let routes: Route[];
    try {
      routes = await this.route(message, event);
    } catch (error) {
      return this.fail(message, event, undefined, error, log.child({ eventKey: event.key, kind: event.kind }));
    }
    const outcomes: EventOutcome[] = [];
    for (const route of routes) outcomes.push(await this.deliverToLine(message, route.event, route.line, receivedAt, log));
    return combinedOutcome(outcomes);
  }

  private async deliverToLine(message: ReceivedMessage, event: WhatsAppEvent, line: Line, receivedAt: string, log: Logger): Promise<EventOutcome> {
    const eventLog = log.child({ eventKey: event.key, kind: event.kind, phoneNumberId: maskPhone(event.phoneNumberId) });
    const claim = await this.options.dedupe.claim(event.key).catch((error: unknown) => error as Error);
    if (claim instanceof Error) return this.fail(message, event, line, claim, eventLog);
    if (claim.outcome === 'duplicate') {
      eventLog.debug({ lineId: line.lineId }, 'duplicate event skipped');
      return { result: 'duplicate' };
    }
    if (claim.outcome === 'busy') {
      // Another worker holds it (Meta sent the payload twice at once): look again once its lease ends.
      return { result: 'retry', reason: 'event_in_progress', delayMs: Math.max(1000, claim.leaseUntil - Date.now()) };
    }

    // The poller keeps the message hidden while we work; keep the claim ours for as long (large media, Bird retries).
    let leaseLost = false;
    const renewal = setInterval(() => {
      this.options.dedupe.extend(event.key, claim.token).then(
        (held) => {
          if (held) return;
          leaseLost = true;
          eventLog.warn('dedupe lease lost while working on the event');
        },
        (error: unknown) => eventLog.warn({ err: error }, 'could not extend the dedupe lease'),
      );
    }, Math.max(1000, Math.floor(this.options.dedupe.leaseMs / 3)));
    renewal.unref();
    try {
      const media = await this.fetchMedia(event, line, receivedAt);
      // Another worker may own the event now: let it deliver, and look again later.
      if (leaseLost) throw new RetryableError('dedupe_lease_lost', 'The claim lapsed while fetching media; the event was not delivered');
      await this.options.bird.deliver({ lineId: line.lineId, target: await resolveBirdTarget(line, this.options.secrets), event, receivedAt, media });
    } catch (error) {
      clearInterval(renewal);
      // Give the claim back at once: a retry or a redrive must be able to take it.
      await this.options.dedupe.release(event.key, claim.token).catch((e: unknown) => eventLog.warn({ err: e }, 'could not release the claim; its lease will lapse'));
      return this.fail(message, event, line, error, eventLog);
    }
    clearInterval(renewal);
    // Bird has the event: from here on the claim is never given back, or a retry would deliver it again.
    try {
      await this.completion.execute(() => this.options.dedupe.complete(event.key, claim.token));
    } catch (error) {
      if (isRetryable(error)) {
        // The lease lapses by itself; only then may the message's next receive take the event again.
        eventLog.error({ err: error, lineId: line.lineId }, 'delivered to Bird but not marked COMPLETED; the message will be retried after the lease');
        return { result: 'retry', reason: 'dedupe_complete_failed', delayMs: this.options.dedupe.leaseMs };
      }
      eventLog.error({ err: error, lineId: line.lineId }, 'delivered to Bird but the COMPLETED mark was refused');
    }
    eventLog.info({ lineId: line.lineId, transport: line.bird.transport }, 'event delivered to Bird');
    return { result: 'delivered' };
  }

  /**
   * The line comes from `value.metadata.phone_number_id`, never from `entry.id`. Account-level
   * changes (templates, account updates) carry no phone number: a per-line URL names their line;
   * on the unified URL they go to every active line of the WABA (`entry.id`), each under its own key.
   */
  private async route(message: ReceivedMessage, event: WhatsAppEvent): Promise<Route[]> {
    const taggedLineId = message.attributes.lineId;
    if (event.phoneNumberId === undefined) {
      if (taggedLineId !== undefined) {
        const tagged = await this.options.lines.byId(taggedLineId);
        if (!tagged) throw new PermanentError('unrouted', `The per-line URL's line ${taggedLineId} is not registered`);
        return [{ line: this.activeLine(tagged), event }];
      }
      const lines = event.wabaId === undefined ? [] : await this.options.lines.activeByWabaId(event.wabaId);
      if (lines.length === 0) throw new PermanentError('unrouted', 'The event has no phone_number_id and no active line belongs to its WABA');
      return lines.map((line) => ({ line, event: { ...event, key: `${event.key}#line:${line.lineId}` } }));
    }
    const line = await this.options.lines.byPhoneNumberId(event.phoneNumberId);
    if (!line) throw new PermanentError('unrouted', 'No line is registered for this phone_number_id');
    if (taggedLineId !== undefined && taggedLineId !== line.lineId) {
      throw new PermanentError('misrouted', `Arrived on line ${taggedLineId}'s URL but its phone_number_id belongs to line ${line.lineId}`);
    }
    return [{ line: this.activeLine(line), event }];
  }

  private activeLine(line: Line): Line {
    if (!line.active) throw new PermanentError('line_inactive', `Line ${line.lineId} is disabled`);
    return line;
  }

  private async fetchMedia(event: WhatsAppEvent, line: Line, receivedAt: string) {
    const media = event.message?.media;
    if (!media) return undefined;
    const tokenRef = line.accessToken ?? this.options.defaultAccessToken;
    if (!tokenRef) throw new PermanentError('media_no_token', `Line ${line.lineId} has no accessToken and WHATSAPP_ACCESS_TOKEN is not set`);
    const accessToken = await this.options.secrets.resolve(tokenRef);
    const stored = await this.options.media.store({ lineId: line.lineId, accessToken, wamid: event.message!.id, media, receivedAt: new Date(receivedAt) });
    return { ...stored, url: await this.options.media.presignedUrl(stored.s3Key) };
  }

  private async fail(message: ReceivedMessage, event: WhatsAppEvent, line: Line | undefined, error: unknown, log: Logger): Promise<EventOutcome> {
    if (isRetryable(error)) {
      const reason = error instanceof GatewayError ? error.reason : 'unexpected_error';
      log.warn({ err: error, reason, lineId: line?.lineId }, 'event failed; the message will be retried');
      return { result: 'retry', reason, delayMs: error instanceof RetryableError ? error.retryAfterMs : undefined };
    }
    try {
      await this.park(message, event, error as GatewayError, log, line);
      return { result: 'parked' };
    } catch (parkError) {
      log.error({ err: parkError }, 'could not park the event; the message will be retried');
      return { result: 'retry', reason: 'dlq_unavailable' };
    }
  }

  private async park(message: ReceivedMessage, event: WhatsAppEvent | undefined, error: GatewayError, log: Logger, line?: Line): Promise<void> {
    await this.options.parker.park({
      body: message.original.body,
      attributes: message.original.attributes,
      reason: error.reason,
      eventKey: event?.key,
      lineId: line?.lineId,
    });
    log.error({ reason: error.reason, lineId: line?.lineId, event: 'event_parked', detail: error.message }, 'event parked in the DLQ');
  }
}
