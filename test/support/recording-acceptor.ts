import { PermanentError, RetryableError } from '../../src/errors';
import type { AcceptedOutbound, OutboundAcceptor, OutboundRequest } from '../../src/outbound/job';

/**
 * The OutboundAcceptor contract (src/outbound/job.ts) held in memory, for tests of an entry on its
 * own: accepted = recorded; the same key with the same body is a duplicate, with another body
 * `idempotency_key_reused`; a body without a string `type` is refused as the send-body schema
 * would; `unavailable` rejects as the real one does when SQS refuses.
 */
export class RecordingAcceptor implements OutboundAcceptor {
  readonly accepted: OutboundRequest[] = [];
  unavailable = false;

  async accept(request: OutboundRequest): Promise<AcceptedOutbound> {
    if (this.unavailable) throw new RetryableError('outbound_unavailable', 'queue down');
    if (typeof request.body?.type !== 'string') throw new PermanentError('invalid_send_body', 'type: required');
    const index = this.accepted.findIndex((r) => r.lineId === request.lineId && r.idempotencyKey === request.idempotencyKey);
    if (index >= 0) {
      if (JSON.stringify(this.accepted[index]!.body) !== JSON.stringify(request.body)) throw new PermanentError('idempotency_key_reused', 'other body');
      return { id: `out-${index}`, status: 'queued', duplicate: true };
    }
    this.accepted.push(request);
    return { id: `out-${this.accepted.length - 1}`, status: 'queued', duplicate: false };
  }

  reset(): void {
    this.accepted.length = 0;
    this.unavailable = false;
  }
}
