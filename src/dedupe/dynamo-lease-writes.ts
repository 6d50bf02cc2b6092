import type { FailureReason } from '../errors';
import { stepsJournal } from '../journal/journal-update';
import { Counter, type Registry } from '../observability/metrics';
import { DEDUPE_STATUS, type DedupeRecord } from './dedupe-store';
import { isConditionFailure, storeFailure, type DedupeTable } from './dedupe-table';
import type { LeaseJournal, LeaseWrites } from './event-lease';

type CompletionPrevious = 'own_lease' | 'lost_lease' | 'completed' | 'parked' | 'absent';

/**
 * How a claim ends or lives on, once taken: complete, park, release and extend, each one UpdateItem
 * conditioned on the lease's token (complete excepted: see there). RecordLease is the only caller;
 * the token never leaves the store's side.
 */
export class DynamoLeaseWrites implements LeaseWrites {
  private readonly completions: Counter<'previous'>;
  private readonly releases: Counter<'outcome'>;
  private readonly parks: Counter<'outcome'>;

  constructor(
    private readonly table: DedupeTable,
    registry?: Registry,
  ) {
    const registers = registry ? [registry] : [];
    this.completions = new Counter({
      name: 'wa_ingress_dedupe_completions_total',
      help: 'Events marked COMPLETED, by what the record was before: own_lease, lost_lease (the lease lapsed first: consider a longer lease), completed, parked, absent',
      labelNames: ['previous'],
      registers,
    });
    this.releases = new Counter({
      name: 'wa_ingress_dedupe_releases_total',
      help: 'Leases given up early, by outcome: released, not_owner (lapsed and taken, or completed: nothing to release)',
      labelNames: ['outcome'],
      registers,
    });
    this.parks = new Counter({
      name: 'wa_ingress_dedupe_parks_total',
      help: 'Events marked PARKED after going to the DLQ, by outcome: parked, not_owner (the lease was lost first)',
      labelNames: ['outcome'],
      registers,
    });
  }

  /** Bird has already accepted the event under the same Idempotency-Key when this is called, so COMPLETED is
   * the truth whoever holds the lease: the token is not required to match, and a worker whose lease lapsed
   * does not fail. A later release by the new lease holder cannot undo it (release never touches COMPLETED). */
  async complete(key: string, token: string, journal?: LeaseJournal): Promise<void> {
    const now = this.table.clock();
    let before: Partial<DedupeRecord> | undefined;
    try {
      const answer = await this.table.update(key, {
        // if_not_exists: keep the claim's expiry; a record that vanished (TTL, by hand) still gets one.
        UpdateExpression:
          'SET #status = :completed, #completedAt = :now, #expiresAt = if_not_exists(#expiresAt, :expiresAt) REMOVE #owner, #leaseUntil',
        ExpressionAttributeValues: {
          ':completed': DEDUPE_STATUS.completed,
          ':now': now,
          ':expiresAt': this.table.expiresAt(now),
        },
        // Free with the write; tells the lease-lapse rate apart in metrics.
        ReturnValues: 'ALL_OLD',
      }, journal && stepsJournal(journal.steps));
      before = answer.Attributes as Partial<DedupeRecord> | undefined;
    } catch (error) {
      throw storeFailure('complete', key, error);
    }
    this.completions.inc({ previous: previousState(before, token) });
    this.table.published(key, journal);
  }

  /** PARKED, with a fresh expiry so the record outlives the DLQ copy (DLQ_RETENTION_DAYS). */
  async park(key: string, token: string, reason: FailureReason, journal?: LeaseJournal): Promise<void> {
    const now = this.table.clock();
    try {
      await this.table.update(key, {
        UpdateExpression: 'SET #status = :parked, #parkedAt = :now, #parkReason = :reason, #expiresAt = :expiresAt REMOVE #owner, #leaseUntil',
        ConditionExpression: '#owner = :token AND #status = :inProgress',
        ExpressionAttributeValues: {
          ':parked': DEDUPE_STATUS.parked,
          ':now': now,
          ':reason': reason,
          ':expiresAt': this.table.expiresAt(now),
          ':token': token,
          ':inProgress': DEDUPE_STATUS.inProgress,
        },
      }, journal && stepsJournal(journal.steps));
      this.parks.inc({ outcome: 'parked' });
      this.table.published(key, journal);
    } catch (error) {
      // Lost to another worker, which handles the event from here (it may park it a second time).
      if (isConditionFailure(error)) {
        this.parks.inc({ outcome: 'not_owner' });
        return;
      }
      throw storeFailure('park', key, error);
    }
  }

  /** Give the lease up (only the holder's token can). */
  async release(key: string, token: string, journal?: LeaseJournal): Promise<void> {
    try {
      const retries = journal?.steps.some((s) => s.step === 'retried') ? 1 : 0;
      await this.table.update(key, {
        // Lease 0 rather than a delete: the next claim succeeds at once and the attempts count survives.
        UpdateExpression: 'SET #leaseUntil = :released REMOVE #owner',
        ConditionExpression: '#owner = :token AND #status = :inProgress',
        ExpressionAttributeValues: { ':released': 0, ':token': token, ':inProgress': DEDUPE_STATUS.inProgress },
      }, journal && stepsJournal(journal.steps, { retries }));
      this.releases.inc({ outcome: 'released' });
      this.table.published(key, journal);
    } catch (error) {
      // Not ours any more (lapsed and re-claimed, or completed): nothing to give up, and the caller
      // is already on a failure path that must not be masked.
      if (isConditionFailure(error)) {
        this.releases.inc({ outcome: 'not_owner' });
        return;
      }
      throw storeFailure('release', key, error);
    }
  }

  /** Renew the holder's lease for another `leaseMs` from now. */
  async extend(key: string, token: string, leaseMs: number): Promise<boolean> {
    try {
      await this.table.update(key, {
        UpdateExpression: 'SET #leaseUntil = :leaseUntil',
        ConditionExpression: '#owner = :token AND #status = :inProgress',
        ExpressionAttributeValues: { ':leaseUntil': this.table.clock() + leaseMs, ':token': token, ':inProgress': DEDUPE_STATUS.inProgress },
      });
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw storeFailure('extend', key, error);
    }
  }
}

function previousState(before: Partial<DedupeRecord> | undefined, token: string): CompletionPrevious {
  if (!before) return 'absent';
  if (before.status === DEDUPE_STATUS.completed) return 'completed';
  if (before.status === DEDUPE_STATUS.parked) return 'parked';
  return before.owner === token ? 'own_lease' : 'lost_lease';
}
