import type { BirdDelivery, DeliveredMedia } from '../../src/bird';
import type { BirdTarget } from '../../src/lines/line';
import type { WhatsAppEvent } from '../../src/meta/event';
import { envelopeToEvents } from '../../src/meta/envelope';
import { loadFixture } from '../support/fixtures';

/** The first event Meta's real payload fixture normalises to. */
export function fixtureEvent(name: string): WhatsAppEvent {
  const event = envelopeToEvents(loadFixture(name).json)[0];
  if (!event) throw new Error(`fixture ${name} has no event`);
  return event;
}

export const RECEIVED_AT = '2026-11-22T07:00:00.000Z';

export function mediaFor(event: WhatsAppEvent): DeliveredMedia {
  return {
    url: `https://bucket.s3.amazonaws.com/media/${event.message?.media?.id}?X-Amz-Signature=abc`,
    mimeType: event.message?.media?.mimeType,
    sha256: 'V5OPpLD/gEG6Xjg0MbmQDLFgcKsL+j5LfY4ny/pZ4MY=',
    size: 12345,
    s3Key: `media/demo-line/${event.message?.media?.id}`,
  };
}

export function deliveryOf(event: WhatsAppEvent, target: BirdTarget, media?: DeliveredMedia): BirdDelivery {
  return { lineId: 'demo-line', target, event, receivedAt: RECEIVED_AT, media };
}
