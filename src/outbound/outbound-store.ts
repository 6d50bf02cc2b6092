import type { OutboundBody } from './job';
import type { OutboundRecord, OutboundError, OutboundPricing, OutboundState, SuppressedReason } from './record';

export interface NewOutbound {
  id: string;
  lineId: string;
  idempotencyKey: string;
  to: string;
  bodyHash: string;
  /** Kept on the record (the outbox): a job that never reached the queue is enqueued again from it. */
  body: OutboundBody;
  type: string;
  source: OutboundRecord['source'];
  inboundReceivedAt?: string;
}

export type CreateResult = { created: true; record: OutboundRecord } | { created: false; record: OutboundRecord };

/**
 * `claimed`: this process may send now (`resend` when an earlier attempt may have reached Meta:
 * an uncertain send or a crashed sender's lapsed claim).
 * `not_claimable`: another attempt holds it, or it is settled; `record` tells which.
 */
export type ClaimResult =
  | { claimed: true; record: OutboundRecord; resend: false | 'uncertain' | 'lapsed_claim' }
  | { claimed: false; record?: OutboundRecord };

/** The claim a send was made under: its attempt number fences every write that ends the send. */
export interface SendFence {
  id: string;
  /** The record's `attempts` right after this claim took it. */
  attempt: number;
}

export function fenceOf(claim: Extract<ClaimResult, { claimed: true }>): SendFence {
  return { id: claim.record.id, attempt: claim.record.attempts };
}

/** What an operator decided for a reply parked `send_uncertain`; who and why go into its journey. */
export interface OperatorDecision {
  action: 'resend' | 'mark_sent';
  /** Who decided (console, or the CLI's user): short, never a secret. */
  actor: string;
  reason: string;
}

/** A status Meta reported for a message we sent (a webhook), to settle the record with. */
export interface StatusUpdate {
  lineId: string;
  /** The outbound id (`biz_opaque_callback_data`), when Meta echoed it. */
  id?: string;
  wamid: string;
  status: Extract<OutboundState, 'sent' | 'delivered' | 'read' | 'failed'>;
  error?: OutboundError;
  /** The status's `pricing`, when Meta sent one: stored on the record. */
  pricing?: OutboundPricing;
}

/**
 * What `settle` answers: the record, whether this call's status was written (`stepped`: false when
 * the record was already as far or further), and whether it stored the reply's first pricing (count it once).
 */
export type SettledRecord = OutboundRecord & { pricedNow?: true; stepped?: true };

/** The outbound records (DynamoDB in production and locally). Every state change is one conditional write. */
export interface OutboundStore {
  /** Conditional put: creates the record `queued` and pending (in the outbox), or returns the one already there. */
  create(input: NewOutbound): Promise<CreateResult>;
  get(id: string): Promise<OutboundRecord | undefined>;
  findByWamid(wamid: string): Promise<OutboundRecord | undefined>;
  /** Take the record for one send (it leaves the outbox): `queued`, or `sending`/`uncertain` whose retryAt has passed. Holds it until `leaseMs` from now. */
  claim(id: string, leaseMs: number): Promise<ClaimResult>;
  /*
   * The writes that end a send carry its claim (`fence`). Each answers false when it did not apply:
   * a status moved the record further, or another claim took it since (this sender was fenced out).
   */
  /** Meta accepted the send. */
  markSent(fence: SendFence, wamid: string): Promise<boolean>;
  /**
   * An ambiguous outcome, counted in `ambiguousSends`: no resend before `graceMs` from now, unless a
   * status settles it first. `graceMs` undefined: the resends are spent; it waits for an operator.
   */
  markUncertain(fence: SendFence, graceMs: number | undefined, detail: string): Promise<boolean>;
  /** A clean refusal (Meta did not take it): back to `queued` for the next attempt. */
  release(fence: SendFence, detail: string): Promise<boolean>;
  markFailed(fence: SendFence, error: OutboundError): Promise<boolean>;
  /** The reply policy held it back (the contact is paused): terminal, never sent. */
  markSuppressed(fence: SendFence, reason: SuppressedReason): Promise<boolean>;
  /** An operator's resend or mark-as-sent of a reply parked uncertain; false when it is not (any more). */
  decide(id: string, decision: OperatorDecision): Promise<boolean>;
  /** Apply a status webhook, forward only. Returns the record (settled or already further), or undefined when it is not ours. */
  settle(update: StatusUpdate): Promise<SettledRecord | undefined>;
}
