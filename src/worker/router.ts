import { PermanentError } from '../errors';
import type { Line } from '../lines/line';
import type { LineRegistry } from '../lines/registry';
import type { WhatsAppEvent } from '../meta/event';
import type { ReceivedMessage } from '../queue/message';

export interface Route {
  line: Line;
  /** The event as delivered to this line (its key names the line when one event goes to several). */
  event: WhatsAppEvent;
}

/** Which line(s) an event goes to; a PermanentError names why it goes nowhere. */
export class LineRouter {
  constructor(private readonly lines: LineRegistry) {}

  /**
   * The line comes from `value.metadata.phone_number_id`, never from `entry.id`. Account-level
   * changes (templates, account updates) carry no phone number: a per-line URL names their line;
   * on the unified URL they go to every active line of the WABA (`entry.id`), each under its own key.
   */
  async route(message: ReceivedMessage, event: WhatsAppEvent): Promise<Route[]> {
    const taggedLineId = message.attributes.lineId;
    if (event.phoneNumberId === undefined) {
      if (taggedLineId !== undefined) {
        const tagged = await this.lines.byId(taggedLineId);
        if (!tagged) throw new PermanentError('unrouted', `The per-line URL's line ${taggedLineId} is not registered`);
        return [{ line: this.activeLine(tagged), event }];
      }
      const lines = event.wabaId === undefined ? [] : await this.lines.activeByWabaId(event.wabaId);
      if (lines.length === 0) throw new PermanentError('unrouted', 'The event has no phone_number_id and no active line belongs to its WABA');
      return lines.map((line) => ({ line, event: { ...event, key: `${event.key}#line:${line.lineId}` } }));
    }
    return [{ line: await this.lineOfNumber(event.phoneNumberId, taggedLineId), event }];
  }

  /** The active line of a phone_number_id (and of the per-line URL it came by, when tagged): the ingress routes statuses it settles by this too. */
  async lineOfNumber(phoneNumberId: string, taggedLineId?: string): Promise<Line> {
    const line = await this.lines.byPhoneNumberId(phoneNumberId);
    if (!line) throw new PermanentError('unrouted', 'No line is registered for this phone_number_id');
    if (taggedLineId !== undefined && taggedLineId !== line.lineId) {
      throw new PermanentError('misrouted', `Arrived on line ${taggedLineId}'s URL but its phone_number_id belongs to line ${line.lineId}`);
    }
    return this.activeLine(line);
  }

  private activeLine(line: Line): Line {
    if (!line.active) throw new PermanentError('line_inactive', `Line ${line.lineId} is disabled`);
    return line;
  }

}
