import { randomUUID } from 'node:crypto';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ConfigError, PermanentError } from '../errors';
import { Counter, type Registry } from '../observability/metrics';
import { DEDUPE_STATUS, type ClaimOptions, type ClaimOutcome, type ClaimResult, type DedupeStore } from './dedupe-store';
import { DedupeTable, epochSeconds, isConditionFailure, storedKey, storeFailure } from './dedupe-table';
import { DynamoLeaseWrites } from './dynamo-lease-writes';
import { RecordLease, type LeaseWrites } from './event-lease';
import type { JournalBus } from '../journal/journal-bus';
import { JournalNotes } from '../journal/journal-notes';
import { claimJournal } from '../journal/journal-update';
import type { JourneyStep } from '../journal/journey';

/** The record's `pk` for an event key (its handle): defined with the table's writes, named here too. */
export { storedKey } from './dedupe-table';

// Written by hand: Powertools' idempotency cannot expire an in-progress claim outside Lambda, so a crash would block the key for the whole window.

/**
 * The DLQ keeps a parked message for up to 14 days (SQS's maximum retention): a redrive on the last
 * day must still find the COMPLETED and PARKED records of its payload's events. It also covers
 * Meta's 7 days of retries.
 */
export const DLQ_RETENTION_DAYS = 14;
/** DynamoDB's limit for a partition key value. */
const MAX_KEY_BYTES = 2048;

export interface DynamoDedupeStoreOptions {
  documents: DynamoDBDocumentClient;
  /** createAwsClients' itemUpdates: claims and lease writes skip the DocumentClient (src/aws/item-updates.ts). */
  itemUpdates?: DynamoDBClient;
  /** DYNAMODB_DEDUPE_TABLE: partition key `pk` (S), TTL on `expiresAt`. */
  tableName: string;
  /** DEDUPE_TTL_DAYS: how long a key is remembered after its last claim or park; must be more than 14 (the DLQ's retention). */
  ttlDays: number;
  /** Default lease of a claim. At most the visibility timeout, so a crashed worker's lease has lapsed when SQS shows the message again. */
  leaseMs: number;
  /** SQS_VISIBILITY_TIMEOUT_SECONDS of the queue whose events are claimed. */
  visibilityTimeoutSeconds: number;
  /** Epoch ms; injected so tests can move time. */
  clock?: () => number;
  registry?: Registry;
  /** Journey steps are published here once written (the console's live tail in this process). */
  journalBus?: JournalBus;
}

/**
 * One item per event key, moving INPROGRESS → COMPLETED | PARKED (see dedupe-store.ts). This class
 * takes the claims; a claim's lease handle (RecordLease) ends it through DynamoLeaseWrites, so the
 * token stays on the store's side. Claim is a single conditional UpdateItem (an upsert: unlike
 * PutItem it can count attempts without a read, for the same one write); complete is one UpdateItem;
 * the happy path never reads. Only a refused claim reads, once and consistently, to tell a
 * duplicate from a busy key.
 */
export class DynamoDedupeStore implements DedupeStore {
  readonly leaseMs: number;
  /** The writes of a claim once taken (complete, park, release, extend), keyed by its token. */
  readonly leases: LeaseWrites;
  private readonly table: DedupeTable;
  private readonly maxLeaseMs: number;
  private readonly clock: () => number;
  private readonly claims: Counter<'outcome'>;
  private readonly notes: JournalNotes;

  constructor(options: DynamoDedupeStoreOptions) {
    if (!options.tableName) throw new ConfigError('DYNAMODB_DEDUPE_TABLE must name the dedupe table');
    if (!(options.ttlDays > DLQ_RETENTION_DAYS)) {
      throw new ConfigError(
        `DEDUPE_TTL_DAYS must be more than ${DLQ_RETENTION_DAYS} (the DLQ keeps a parked event that long, and its redrive must find the records); got ${options.ttlDays}`,
      );
    }
    if (!(options.visibilityTimeoutSeconds > 0)) {
      throw new ConfigError(`SQS_VISIBILITY_TIMEOUT_SECONDS must be positive; got ${options.visibilityTimeoutSeconds}`);
    }
    this.maxLeaseMs = options.visibilityTimeoutSeconds * 1000;
    this.checkLease(options.leaseMs, (message) => new ConfigError(message));
    this.leaseMs = options.leaseMs;
    this.clock = options.clock ?? Date.now;
    this.table = new DedupeTable({ documents: options.documents, itemUpdates: options.itemUpdates, tableName: options.tableName, ttlDays: options.ttlDays, clock: this.clock, journalBus: options.journalBus });
    this.leases = new DynamoLeaseWrites(this.table, options.registry);
    this.notes = new JournalNotes({ documents: options.documents, tableName: options.tableName, bus: options.journalBus });
    const registers = options.registry ? [options.registry] : [];
    this.claims = new Counter({
      name: 'wa_ingress_dedupe_claims_total',
      help: 'Claims of event keys, by outcome: claimed (process it), duplicate (already completed), parked (already in the DLQ), busy (another worker holds the lease)',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['claimed', 'duplicate', 'parked', 'busy'] satisfies ClaimOutcome[]) this.claims.inc({ outcome }, 0);
  }

  async claim(key: string, options: ClaimOptions = {}): Promise<ClaimResult> {
    checkKey(key);
    const leaseMs = options.leaseMs ?? this.leaseMs;
    this.checkLease(leaseMs, (message) => new RangeError(message));
    const redrive = options.redrive === true;
    // A refused claim whose record then reads as claimable changed in between (released, lapsed or
    // expired): claim once more. Should that race repeat, report busy until now and let the caller retry.
    const result = (await this.claimOnce(key, leaseMs, redrive, options.journal)) ??
      (await this.claimOnce(key, leaseMs, redrive, options.journal)) ?? { outcome: 'busy', leaseUntil: this.clock() };
    this.claims.inc({ outcome: result.outcome });
    return result;
  }

  /** DedupeStore.note: a duplicate's step on the existing record (one extra write, duplicates only). */
  note(key: string, step: JourneyStep, counter: 'duplicates'): Promise<boolean> {
    return this.notes.note(storedKey(key), step, counter);
  }

  /** DedupeStore.record: one conditional upsert, only where no live record is (an expired one counts as absent). */
  async record(key: string, journal: NonNullable<ClaimOptions['journal']>): Promise<boolean> {
    checkKey(key);
    const now = this.clock();
    try {
      await this.table.update(key, {
        UpdateExpression: 'SET #status = :recorded, #completedAt = :nowMs, #expiresAt = :expiresAt',
        ConditionExpression: 'attribute_not_exists(#pk) OR #expiresAt < :nowSeconds',
        ExpressionAttributeValues: { ':recorded': DEDUPE_STATUS.recorded, ':nowMs': now, ':expiresAt': this.table.expiresAt(now), ':nowSeconds': epochSeconds(now) },
      }, claimJournal(journal.facts, journal.steps, new Date(now)));
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw storeFailure('record', key, error);
    }
    this.table.publishReceived(key, journal.facts.lineId, journal.facts.receivedAt);
    this.table.published(key, { lineId: journal.facts.lineId, steps: journal.steps });
    return true;
  }

  /** One conditional upsert; undefined when refused but the record no longer explains why. */
  private async claimOnce(key: string, leaseMs: number, redrive: boolean, journal: ClaimOptions['journal']): Promise<ClaimResult | undefined> {
    const now = this.clock();
    const token = randomUUID();
    // An expired record counts as absent: TTL deletes up to days late. A PARKED one is claimable only by its redrive.
    const claimable = ['attribute_not_exists(#pk)', '(#status = :inProgress AND #leaseUntil < :nowMs)', '#expiresAt < :nowSeconds'];
    if (redrive) claimable.push('#status = :parked');
    try {
      const answer = await this.table.update(key, {
        UpdateExpression:
          'SET #status = :inProgress, #owner = :token, #leaseUntil = :leaseUntil, #expiresAt = :expiresAt REMOVE #completedAt, #parkedAt, #parkReason ADD #attempts :one',
        ConditionExpression: claimable.join(' OR '),
        ExpressionAttributeValues: {
          ':inProgress': DEDUPE_STATUS.inProgress,
          ':token': token,
          ':leaseUntil': now + leaseMs,
          ':expiresAt': this.table.expiresAt(now),
          ':one': 1,
          ':nowMs': now,
          ':nowSeconds': epochSeconds(now),
          ...(redrive ? { ':parked': DEDUPE_STATUS.parked } : {}),
        },
        ReturnValues: 'UPDATED_NEW',
      }, journal && claimJournal(journal.facts, journal.steps, new Date(now)));
      const attempt = Number(answer.Attributes?.attempts ?? 1);
      if (journal) {
        // `received` is derived from the first claim's attributes (no list entry); the live tail hears it once.
        const lineId = journal.facts.lineId;
        if (attempt === 1) this.table.publishReceived(key, lineId, journal.facts.receivedAt);
        this.table.published(key, { lineId, steps: journal.steps });
      }
      return { outcome: 'claimed', lease: new RecordLease(key, attempt, token, this.leases, leaseMs, journal?.facts.lineId) };
    } catch (error) {
      if (!isConditionFailure(error)) throw storeFailure('claim', key, error);
    }
    // dynalite does not return the item with ConditionalCheckFailed, so read it (consistently).
    const record = await this.table.read(key);
    if (!record) return undefined;
    // RECORDED: done without Bird (a status the line did not forward then); it stays done.
    if (record.status === DEDUPE_STATUS.completed || record.status === DEDUPE_STATUS.recorded) return { outcome: 'duplicate' };
    if (record.status === DEDUPE_STATUS.parked) return redrive ? undefined : { outcome: 'parked', reason: record.parkReason };
    const leaseUntil = record.leaseUntil ?? 0;
    return leaseUntil >= this.clock() ? { outcome: 'busy', leaseUntil } : undefined;
  }

  private checkLease(leaseMs: number, fail: (message: string) => Error): void {
    if (!Number.isFinite(leaseMs) || leaseMs <= 0) throw fail(`dedupe lease must be a positive number of ms; got ${leaseMs}`);
    if (leaseMs > this.maxLeaseMs) {
      throw fail(
        `dedupe lease ${leaseMs} ms is longer than the SQS visibility timeout (${this.maxLeaseMs} ms): ` +
          'a redelivered message would find the key still busy; shorten the lease or raise SQS_VISIBILITY_TIMEOUT_SECONDS',
      );
    }
  }
}

function checkKey(key: string): void {
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes === 0 || bytes > MAX_KEY_BYTES) {
    throw new PermanentError('dedupe_invalid_key', `event key must be 1..${MAX_KEY_BYTES} bytes to be a DynamoDB key; got ${bytes}`);
  }
}
