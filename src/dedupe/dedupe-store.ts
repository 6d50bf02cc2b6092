import type { FailureReason } from '../errors';
import type { JournalFacts, JourneyStep } from '../journal/journey';
import type { ReceivedFacts } from '../journal/journal-update';

/**
 * Idempotency for worker events: each event key is claimed before its side effects and then
 * either marked COMPLETED (Bird has it) or PARKED (it sits in the DLQ), so Meta's retries (up to
 * 7 days), SQS redeliveries and DLQ redrives (up to 14 days) reach Bird once.
 *
 * The record's state machine, after Powertools' idempotency:
 *
 *     (absent | expired) ──claim──▶ INPROGRESS ──complete──▶ COMPLETED
 *                                   │  ▲    │
 *                         release / │  │    └──park──▶ PARKED ──claim (redrive only)──▶ INPROGRESS
 *                    lease lapses   ▼  │
 *                                 (claimable)
 *
 *     (absent | expired) ──record──▶ RECORDED   (an event the line keeps from Bird: never claimed; a claim is a duplicate)
 */

/** The states a dedupe record moves through; an expired record counts as absent whatever its state. */
export const DEDUPE_STATUS = { inProgress: 'INPROGRESS', completed: 'COMPLETED', parked: 'PARKED', recorded: 'RECORDED' } as const;
export type DedupeStatus = (typeof DEDUPE_STATUS)[keyof typeof DEDUPE_STATUS];

/** The item stored per event key. Times: `leaseUntil`, `completedAt`, `parkedAt` in epoch ms, `expiresAt` in epoch seconds (the TTL format). */
export interface DedupeRecord {
  pk: string;
  status: DedupeStatus;
  /** Only while INPROGRESS and held. */
  owner?: string;
  /** 0 after a release: the next claim may take it at once. Only while INPROGRESS. */
  leaseUntil?: number;
  expiresAt: number;
  /** How many times the key was claimed; a diagnostic, never reset. Absent if `complete` recreated a vanished record. */
  attempts?: number;
  completedAt?: number;
  parkedAt?: number;
  /** Why the event sits in the DLQ (PARKED only). */
  parkReason?: FailureReason;
}

export interface ClaimOptions {
  /** Lease length in ms; default the store's `leaseMs`. */
  leaseMs?: number;
  /**
   * The message is a DLQ redrive naming this event: a PARKED record may be claimed again. Any
   * other message finds a PARKED event already parked and leaves it (it is parked once).
   */
  redrive?: boolean;
  /**
   * The journal (src/journal) rides on this claim's write: the index attributes and the normalised
   * event (kept from the first claim), and the `claimed` step.
   */
  journal?: { facts: JournalFacts & ReceivedFacts; steps: JourneyStep[] };
}

/** Told about the lease while `keepAlive` renews it. */
export interface LeaseListener {
  /** A renewal found the lease no longer ours (it lapsed and another worker took the key). */
  onLost?(): void;
  /** A renewal failed (the store did not answer); the next one tries again. */
  onError?(error: unknown): void;
}

/**
 * The caller's claim on one event key. Exactly one of complete / park / release ends it; each
 * stops the renewal that `keepAlive` started. Only the handle knows the lease's token.
 */
export interface EventLease {
  readonly key: string;
  /** How many times the key was claimed, 1 for the first. */
  readonly attempt: number;
  /** True once a renewal found the lease taken over: the caller must not deliver. */
  readonly lost: boolean;
  /** Renew the lease (a third of its length apart) until it ends, so long media or Bird retries keep it ours. */
  keepAlive(listener?: LeaseListener): void;
  /**
   * Mark COMPLETED: Bird has the event. Idempotent, and succeeds even if the lease lapsed and
   * someone else took or finished the key (Bird deduplicates by the same Idempotency-Key).
   */
  complete(steps?: JourneyStep[]): Promise<void>;
  /**
   * Mark PARKED with its reason, after the event was put in the DLQ: messages that bring it back
   * skip it, and only a redrive may claim it again. Expiry moves to now + the dedupe window, so the
   * record outlives the DLQ copy. A no-op when the lease is no longer ours.
   */
  park(reason: FailureReason, steps?: JourneyStep[]): Promise<void>;
  /** Give the lease up now so a retry can claim at once. A no-op when it is no longer ours. `steps` (with a `retried` one) count a retry. */
  release(steps?: JourneyStep[]): Promise<void>;
}

export type ClaimResult =
  /** This caller owns the event until the lease ends. */
  | { outcome: 'claimed'; lease: EventLease }
  /** Already COMPLETED within the dedupe window: skip the event and acknowledge it. */
  | { outcome: 'duplicate' }
  /** Already PARKED in the DLQ (and this is not its redrive): skip it, it is parked once. */
  | { outcome: 'parked'; reason?: FailureReason }
  /** Another worker holds a live lease until `leaseUntil` (epoch ms): leave the event for later. */
  | { outcome: 'busy'; leaseUntil: number };

export type ClaimOutcome = ClaimResult['outcome'];

export interface DedupeStore {
  /** Claim `key`. Rejects with RetryableError('dedupe_unavailable') when the store cannot answer. */
  claim(key: string, options?: ClaimOptions): Promise<ClaimResult>;
  /** The lease a claim gets by default. */
  readonly leaseMs: number;
  /**
   * A journey step outside the lease's own writes (a duplicate that arrived): one UpdateItem on the
   * existing record, counted in `counter`. Resolves false when there is no record.
   */
  note?(key: string, step: JourneyStep, counter: 'duplicates'): Promise<boolean>;
  /**
   * An event the worker keeps out of Bird (a status the line does not forward, of a message sent
   * elsewhere): written once, RECORDED, with its journal, so the console lists it and a retry is a
   * duplicate. No claim, no lease. Resolves false when the key already had a live record.
   */
  record?(key: string, journal: NonNullable<ClaimOptions['journal']>): Promise<boolean>;
}
