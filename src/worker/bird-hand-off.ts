import type { BirdAnswer, BirdClient, DeliveredMedia } from '../bird';
import { buildFlowBody } from '../bird/flow-request';
import type { EventLease } from '../dedupe/dedupe-store';
import { RetryableError, type UnfixableMediaReason } from '../errors';
import { resolveBirdTarget } from '../lines/admin';
import type { Line } from '../lines/line';
import type { SecretResolver } from '../lines/secrets';
import type { MediaStore } from '../media';
import { step, type JourneyStep } from '../journal/journey';
import type { WhatsAppEvent } from '../meta/event';
import type { PresenceSignal } from '../outbound/presence';
import type { ReplyScheduler } from '../outbound/flow-replies';
import type { OutboundStatusSettler } from '../outbound/status-settler';
import type { TurnBuffer } from './turns/turn-buffer';
import { presenceTarget } from './turns/turn-message';
import { MediaStep } from './media-step';
import type { MessageHandling } from './message-handling';
import type { ContactStates, ConversationView } from '../conversation/contact-states';
import type { Histogram, Registry } from 'prom-client';
import { stageHistogram, stageSeconds } from '../observability/stage-latency';

export interface BirdHandOffOptions {
  secrets: SecretResolver;
  media: MediaStore;
  bird: BirdClient;
  /** Settles the records of replies the gateway sent from their status webhooks (src/outbound). */
  outboundStatuses?: OutboundStatusSettler;
  /** Conversation turns (lines with `turn`); without it every message is delivered alone. */
  turns?: TurnBuffer;
  /** Where the delivery latency is observed (wa_ingress_stage_seconds). */
  registry?: Registry;
  /** Global Graph token (WHATSAPP_ACCESS_TOKEN) for lines without their own. */
  defaultAccessToken?: string;
  /** Read receipt and typing indicator once Bird has a message (best effort, never fails the event). */
  presence?: PresenceSignal;
  /** A Flow's synchronous `replies`, made durable before the event is COMPLETED. */
  replies?: ReplyScheduler;
  /** Conversation state (src/conversation): updated before Bird hears the event, and told to Bird with it. */
  contacts?: ContactStates;
}

/**
 * The work on a claimed event: settle our reply's record (a status), copy its media, hand it to
 * the line's Bird target (or its conversation turn), then read/typing and the Flow's replies.
 * Throws on failure; the caller's claim decides what the failure means.
 */
export class BirdHandOff {
  private readonly media: MediaStep;

  private readonly stages?: Histogram<'stage'>;

  constructor(private readonly options: BirdHandOffOptions) {
    this.media = new MediaStep(options);
    this.stages = options.registry && stageHistogram(options.registry);
  }

  /** Meta's timestamp (whole seconds) and the ingress's receive time → delivered to Bird. */
  private observeDelivered(event: WhatsAppEvent, receivedAt: string): void {
    const now = Date.now();
    const fromMeta = stageSeconds(event.timestamp ? Number(event.timestamp) * 1000 : undefined, now);
    if (fromMeta !== undefined) this.stages?.observe({ stage: 'meta_to_bird' }, fromMeta);
    const fromReceived = stageSeconds(Date.parse(receivedAt), now);
    if (fromReceived !== undefined) this.stages?.observe({ stage: 'received_to_bird' }, fromReceived);
  }

  /** `steps`: the attempt's journey, appended to as the work goes. */
  async run(handling: MessageHandling, event: WhatsAppEvent, line: Line, lease: EventLease, steps: JourneyStep[]): Promise<void> {
    // A status of one of our replies settles its record first, and Bird learns which reply it was.
    const outbound = event.kind === 'status' ? await this.options.outboundStatuses?.settle(line.lineId, event) : undefined;
    // A turn's buffered messages hold S3 keys: their files are signed now, at delivery.
    const delivered = await this.media.signTurn(outbound ? { ...event, outbound } : event);
    // Before Bird: the window and pause Bird is told already count this event. Idempotent (a retry
    // re-applies nothing), so it runs beside the media copy rather than after it.
    // Both settle before either's failure fails the event: a media copy must not land after the claim is released.
    const [mediaResult, conversationResult] = await Promise.allSettled([
      this.media.fetch(delivered, line, handling.receivedAt),
      this.options.contacts?.observe(line.lineId, event, { pauseMinutes: line.handoff?.pauseMinutes, payload: handling.events, receiveCount: handling.message.receiveCount }),
    ]);
    if (mediaResult.status === 'rejected') throw mediaResult.reason;
    if (conversationResult.status === 'rejected') throw conversationResult.reason;
    const media = mediaResult.value;
    const conversation = conversationResult.value;
    if ('stored' in media && media.stored) steps.push(step('media_stored', { key: media.stored.s3Key, size: media.stored.size, type: media.stored.mimeType }));
    // Another worker may own the event now: let it deliver, and look again later.
    if (lease.lost) throw new RetryableError('dedupe_lease_lost', 'The claim lapsed while fetching media; the event was not delivered');
    const started = Date.now();
    const answer = await this.deliver(handling, delivered, line, { ...('error' in media ? { mediaError: media.error } : { media: media.stored }), conversation });
    steps.push(step('delivered', { transport: answer ? line.bird.transport : 'turn_buffer', status: answer?.status, ms: Date.now() - started }));
    // Held for its turn: Bird has not seen it yet, so no read mark, no typing, no replies.
    if (!answer) return;
    this.observeDelivered(event, handling.receivedAt);
    // Read and typing go out before the replies are queued, so the indicator does not outlive them
    // (for a turn: its last message).
    this.options.presence?.messageHandedToBird(line, presenceTarget(event));
    // Before COMPLETED: if this fails the event is retried, and the same keys dedupe what was queued.
    await this.options.replies?.schedule({ line, event, answer, receivedAt: handling.receivedAt });
  }

  /**
   * Hands the event to the line's Bird target; a later step (durable flow replies) takes what it returns.
   * Undefined: the message joined its conversation's turn (a line with `turn`), as the flow would have
   * received it alone, and is done once buffered; its turn reaches Bird later as one `turn` event.
   */
  private async deliver(
    handling: MessageHandling,
    event: WhatsAppEvent,
    line: Line,
    file: { media?: DeliveredMedia; mediaError?: UnfixableMediaReason; conversation?: ConversationView },
  ): Promise<BirdAnswer | undefined> {
    const target = await resolveBirdTarget(line, this.options.secrets);
    const delivery = { lineId: line.lineId, target, event, receivedAt: handling.receivedAt, signal: handling.signal, ...file };
    if (this.options.turns?.holds(line, event)) {
      await this.options.turns.buffer({ line, event, body: buildFlowBody(delivery) });
      return undefined;
    }
    // The signal cuts the Bird call in flight on shutdown.
    return this.options.bird.deliver(delivery);
  }
}
