import type { ContactStates } from '../conversation/contact-states';
import { decideReply, type ReplyDecision } from '../conversation/reply-policy';
import type { Line } from '../lines/line';
import { Counter, type Registry } from '../observability/metrics';
import type { OutboundJob } from './job-message';

const SEND: ReplyDecision = { action: 'send' };

/**
 * The sender's check just before the Graph call (ARCHITECTURE §6): reads the contact's state fresh
 * (a pause set a second ago counts) and asks the reply policy; counts what the sender held back or changed.
 */
export class ReplyGate {
  private readonly suppressed: Counter<'lineId' | 'reason'>;
  private readonly windowClosed: Counter<'lineId' | 'source' | 'outcome'>;

  constructor(
    private readonly deps: { contacts: Pick<ContactStates, 'get'>; registry: Registry; clock?: () => number },
  ) {
    this.suppressed = new Counter({
      name: 'wa_ingress_outbound_suppressed_total',
      help: 'AI replies (flow replies, Bird webhooks) not sent because the contact was paused (a human has the conversation), by line and reason',
      labelNames: ['lineId', 'reason'],
      registers: [deps.registry],
    });
    this.windowClosed = new Counter({
      name: 'wa_ingress_outbound_window_closed_total',
      help: 'Free-form sends to a contact whose customer service window is known closed, by line, source and outcome (fallback: sent as the line template; refused: never sent)',
      labelNames: ['lineId', 'source', 'outcome'],
      registers: [deps.registry],
    });
  }

  async decide(job: OutboundJob, line: Line): Promise<ReplyDecision> {
    // A template needs no window, and the business's own template needs no pause check: no read.
    if (job.body.type === 'template' && (job.source === 'api' || job.source === 'cli')) return SEND;
    const state = await this.deps.contacts.get(line.lineId, job.to);
    return decideReply({ source: job.source, type: job.body.type, state, fallback: line.windowFallbackTemplate, now: (this.deps.clock ?? Date.now)() });
  }

  /** Once the decision is acted on (under the claim: a duplicate job is not counted twice). */
  count(job: OutboundJob, decision: ReplyDecision): void {
    if (decision.action === 'suppress') this.suppressed.inc({ lineId: job.lineId, reason: decision.reason });
    if (decision.action === 'fallback' || decision.action === 'refuse') {
      this.windowClosed.inc({ lineId: job.lineId, source: job.source, outcome: decision.action === 'fallback' ? 'fallback' : 'refused' });
    }
  }
}
