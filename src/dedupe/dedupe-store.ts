/**
 * Idempotency for worker events: each event key is claimed before its side effects and marked
 * COMPLETED after them, so Meta's retries (up to 7 days) and SQS redeliveries reach Bird once.
 */

/** The states a dedupe record moves through; an expired record counts as absent whatever its state. */
export const DEDUPE_STATUS = { inProgress: 'INPROGRESS', completed: 'COMPLETED' } as const;
export type DedupeStatus = (typeof DEDUPE_STATUS)[keyof typeof DEDUPE_STATUS];

/** The item stored per event key. Times: `leaseUntil` in epoch ms, `expiresAt` in epoch seconds (the TTL format). */
export interface DedupeRecord {
  pk: string;
  status: DedupeStatus;
  /** Absent once completed or released. */
  owner?: string;
  /** 0 after a release: the next claim may take it at once. Absent once completed. */
  leaseUntil?: number;
  expiresAt: number;
  /** How many times the key was claimed; a diagnostic, never reset. Absent if `complete` recreated a vanished record. */
  attempts?: number;
  completedAt?: number;
}

export type ClaimResult =
  /** This caller owns the event until `leaseUntil`; `token` proves it to `release`. `attempt` counts claims of the key, 1 for the first. */
  | { outcome: 'claimed'; token: string; attempt: number }
  /** Already COMPLETED within the dedupe window: skip the event and acknowledge it. */
  | { outcome: 'duplicate' }
  /** Another worker holds a live lease until `leaseUntil` (epoch ms): leave the event for later. */
  | { outcome: 'busy'; leaseUntil: number };

export type ClaimOutcome = ClaimResult['outcome'];

export interface DedupeStore {
  /** Claim `key` for `leaseMs` (default: the store's lease). Rejects with RetryableError('dedupe_unavailable') when the store cannot answer. */
  claim(key: string, leaseMs?: number): Promise<ClaimResult>;
  /** Mark `key` COMPLETED. Idempotent, and succeeds even if the caller's lease lapsed and someone else took or finished the key. */
  complete(key: string, token: string): Promise<void>;
  /** Give up the caller's lease now so a retry or redrive can claim at once. A no-op if the lease is no longer the caller's or the key is COMPLETED. */
  release(key: string, token: string): Promise<void>;
  /**
   * Push the caller's lease `leaseMs` (default: the store's lease) past now, while it still works on
   * the event. Resolves false when the lease is no longer the caller's.
   */
  extend(key: string, token: string, leaseMs?: number): Promise<boolean>;
  /** The lease a claim gets by default: the pipeline renews within it. */
  readonly leaseMs: number;
}
