import type { ContactStates } from '../conversation/contact-states';
import type { Line } from '../lines/line';
import type { WhatsAppEvent } from '../meta/event';
import type { OutboundStatusSettler } from '../outbound/status-settler';
import type { MessageHandling } from './message-handling';

/**
 * A Meta status the line does not forward (its forwardStatuses): what it changes without Bird. A
 * status of our reply settles the reply's record (one conditional write; its rank decides, so a
 * retried or stale status changes nothing); a 131047 `failed` still closes the contact's window.
 * Both are idempotent, so the status needs no claim of its own.
 */
export class UnforwardedStatuses {
  constructor(private readonly options: { outboundStatuses?: OutboundStatusSettler; contacts?: ContactStates }) {}

  /** True when the status was of a reply the gateway sent (its record took the step); false: sent elsewhere. */
  async apply(handling: MessageHandling, event: WhatsAppEvent, line: Line): Promise<boolean> {
    // Both settle before either's failure fails the event, as in the hand-off.
    const [settled, observed] = await Promise.allSettled([
      this.options.outboundStatuses?.settle(line.lineId, event),
      this.options.contacts?.observe(line.lineId, event, { pauseMinutes: line.handoff?.pauseMinutes, payload: handling.events, receiveCount: handling.message.receiveCount }),
    ]);
    if (settled.status === 'rejected') throw settled.reason;
    if (observed.status === 'rejected') throw observed.reason;
    return settled.value !== undefined;
  }
}
