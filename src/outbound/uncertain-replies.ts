import { maskPhone, maskWamids, type Logger } from '../observability/logger';
import type { DlqEntry, RedriveResult } from '../queue/dlq';
import type { OperatorDecision, OutboundStore } from './outbound-store';
import { awaitsOperator, type OutboundState } from './record';

/** The outbound DLQ as the operator's decision needs it (DeadLetterQueue). */
export interface ParkedJobs {
  list(): Promise<DlqEntry[]>;
  redrive(selector: { id: string }): Promise<RedriveResult>;
}

export type DecisionResult =
  /** `parked`: the DLQ ids of its parked job; `redriven` of them went back to the outbound queue. */
  | { outcome: 'applied'; status: OutboundState; parked: string[]; redriven: number }
  | { outcome: 'not_found' }
  /** A status, or another operator, came first: the record is no longer parked uncertain. */
  | { outcome: 'not_uncertain'; status: OutboundState }
  /** A resend needs the parked job (the record keeps no body): it is not in the DLQ (yet). */
  | { outcome: 'no_parked_job' };

export const MAX_REASON_LENGTH = 200;

/**
 * An operator's answer to a reply parked `send_uncertain` (console and CLI alike):
 * - resend: the record becomes claimable for one more send, then its parked job goes back on the
 *   outbound queue;
 * - mark as sent: the record is settled `sent` (no wamid), then its parked job leaves the DLQ the
 *   same way, and the sender drops it because the record is settled. A redrive rather than a delete
 *   keeps one path out of the DLQ, and a job still on its way there meets the same settled record.
 * The record's conditional write decides first; the DLQ follows only when it applied.
 */
export class UncertainReplies {
  constructor(private readonly deps: { store: Pick<OutboundStore, 'get' | 'decide'>; parked: ParkedJobs; logger: Logger }) {}

  async decide(lineId: string, id: string, decision: OperatorDecision): Promise<DecisionResult> {
    const record = await this.deps.store.get(id);
    if (!record || record.lineId !== lineId) return { outcome: 'not_found' };
    if (!awaitsOperator(record)) return { outcome: 'not_uncertain', status: record.status };
    const parked = (await this.deps.parked.list()).filter((entry) => entry.eventKey === id && entry.reason === 'send_uncertain');
    if (decision.action === 'resend' && parked.length === 0) return { outcome: 'no_parked_job' };
    const reason = journalSafe(decision.reason);
    const actor = journalSafe(decision.actor);
    if (!(await this.deps.store.decide(id, { action: decision.action, actor, reason }))) {
      const now = await this.deps.store.get(id);
      return { outcome: 'not_uncertain', status: now?.status ?? record.status };
    }
    let redriven = 0;
    for (const entry of parked) redriven += (await this.deps.parked.redrive({ id: entry.id })).redriven.length;
    this.deps.logger.warn({ event: 'outbound_operator_decision', action: decision.action, actor, lineId, outboundId: id, redriven }, 'operator decided an uncertain reply');
    return { outcome: 'applied', status: decision.action === 'resend' ? 'uncertain' : 'sent', parked: parked.map((e) => e.id), redriven };
  }
}

/** Operator text goes into the journey, which never holds a whole phone number or wamid. */
export function journalSafe(text: string): string {
  return maskWamids(text.slice(0, MAX_REASON_LENGTH)).replace(/\+?\d{7,}/g, (digits) => maskPhone(digits) ?? '');
}
