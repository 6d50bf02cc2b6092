import { randomUUID } from 'node:crypto';
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient, type UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import { ConfigError, PermanentError, RetryableError, type FailureReason, type GatewayError } from '../errors';
import { Counter, type Registry } from '../observability/metrics';
import { DEDUPE_STATUS, type ClaimOptions, type ClaimOutcome, type ClaimResult, type DedupeRecord, type DedupeStore } from './dedupe-store';
import { RecordLease, type LeaseJournal, type LeaseWrites } from './event-lease';
import type { JournalBus } from '../journal/journal-bus';
import { JournalNotes } from '../journal/journal-notes';
import { claimJournal, mergeUpdateExpression, stepsJournal, type JournalUpdate } from '../journal/journal-update';
import type { JourneyStep } from '../journal/journey';
import { eventHandle } from '../privacy/pseudonyms';

// Written by hand: Powertools' idempotency cannot expire an in-progress claim outside Lambda, so a crash would block the key for the whole window.

/**
 * The DLQ keeps a parked message for up to 14 days (SQS's maximum retention): a redrive on the last
 * day must still find the COMPLETED and PARKED records of its payload's events. It also covers
 * Meta's 7 days of retries.
 */
export const DLQ_RETENTION_DAYS = 14;
const DAY_SECONDS = 86_400;
/** DynamoDB's limit for a partition key value. */
const MAX_KEY_BYTES = 2048;

export interface DynamoDedupeStoreOptions {
  documents: DynamoDBDocumentClient;
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

type CompletionPrevious = 'own_lease' | 'lost_lease' | 'completed' | 'parked' | 'absent';

/**
 * One item per event key, moving INPROGRESS → COMPLETED | PARKED (see dedupe-store.ts). Callers get a
 * lease handle (RecordLease) from `claim`; the token and the record writes stay in here. Claim is a single conditional UpdateItem (an upsert: unlike PutItem it can
 * count attempts without a read, for the same one write); complete is one UpdateItem; the happy path
 * never reads. Only a refused claim reads, once and consistently, to tell a duplicate from a busy key.
 */
export class DynamoDedupeStore implements DedupeStore, LeaseWrites {
  private readonly documents: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly ttlSeconds: number;
  readonly leaseMs: number;
  private readonly maxLeaseMs: number;
  private readonly clock: () => number;
  private readonly claims: Counter<'outcome'>;
  private readonly completions: Counter<'previous'>;
  private readonly releases: Counter<'outcome'>;
  private readonly parks: Counter<'outcome'>;
  private readonly notes: JournalNotes;
  private readonly journalBus?: JournalBus;

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
    this.documents = options.documents;
    this.tableName = options.tableName;
    this.ttlSeconds = Math.round(options.ttlDays * DAY_SECONDS);
    this.leaseMs = options.leaseMs;
    this.clock = options.clock ?? Date.now;
    this.journalBus = options.journalBus;
    this.notes = new JournalNotes({ documents: options.documents, tableName: options.tableName, bus: options.journalBus });
    const registers = options.registry ? [options.registry] : [];
    this.claims = new Counter({
      name: 'wa_ingress_dedupe_claims_total',
      help: 'Claims of event keys, by outcome: claimed (process it), duplicate (already completed), parked (already in the DLQ), busy (another worker holds the lease)',
      labelNames: ['outcome'],
      registers,
    });
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

  /** LeaseWrites, for RecordLease only. Bird has already accepted the event under the same Idempotency-Key when this is called, so COMPLETED is
   * the truth whoever holds the lease: the token is not required to match, and a worker whose lease lapsed
   * does not fail. A later release by the new lease holder cannot undo it (release never touches COMPLETED). */
  async complete(key: string, token: string, journal?: LeaseJournal): Promise<void> {
    const now = this.clock();
    let before: Partial<DedupeRecord> | undefined;
    try {
      const answer = await this.update(key, {
        // if_not_exists: keep the claim's expiry; a record that vanished (TTL, by hand) still gets one.
        UpdateExpression:
          'SET #status = :completed, #completedAt = :now, #expiresAt = if_not_exists(#expiresAt, :expiresAt) REMOVE #owner, #leaseUntil',
        ExpressionAttributeValues: {
          ':completed': DEDUPE_STATUS.completed,
          ':now': now,
          ':expiresAt': this.expiresAt(now),
        },
        // Free with the write; tells the lease-lapse rate apart in metrics.
        ReturnValues: 'ALL_OLD',
      }, journal && stepsJournal(journal.steps));
      before = answer.Attributes as Partial<DedupeRecord> | undefined;
    } catch (error) {
      throw storeFailure('complete', key, error);
    }
    this.completions.inc({ previous: previousState(before, token) });
    this.published(key, journal);
  }

  /** LeaseWrites: PARKED, with a fresh expiry so the record outlives the DLQ copy (DLQ_RETENTION_DAYS). */
  async park(key: string, token: string, reason: FailureReason, journal?: LeaseJournal): Promise<void> {
    const now = this.clock();
    try {
      await this.update(key, {
        UpdateExpression: 'SET #status = :parked, #parkedAt = :now, #parkReason = :reason, #expiresAt = :expiresAt REMOVE #owner, #leaseUntil',
        ConditionExpression: '#owner = :token AND #status = :inProgress',
        ExpressionAttributeValues: {
          ':parked': DEDUPE_STATUS.parked,
          ':now': now,
          ':reason': reason,
          ':expiresAt': this.expiresAt(now),
          ':token': token,
          ':inProgress': DEDUPE_STATUS.inProgress,
        },
      }, journal && stepsJournal(journal.steps));
      this.parks.inc({ outcome: 'parked' });
      this.published(key, journal);
    } catch (error) {
      // Lost to another worker, which handles the event from here (it may park it a second time).
      if (isConditionFailure(error)) {
        this.parks.inc({ outcome: 'not_owner' });
        return;
      }
      throw storeFailure('park', key, error);
    }
  }

  /** LeaseWrites: give the lease up (only the holder's token can). */
  async release(key: string, token: string, journal?: LeaseJournal): Promise<void> {
    try {
      const retries = journal?.steps.some((s) => s.step === 'retried') ? 1 : 0;
      await this.update(key, {
        // Lease 0 rather than a delete: the next claim succeeds at once and the attempts count survives.
        UpdateExpression: 'SET #leaseUntil = :released REMOVE #owner',
        ConditionExpression: '#owner = :token AND #status = :inProgress',
        ExpressionAttributeValues: { ':released': 0, ':token': token, ':inProgress': DEDUPE_STATUS.inProgress },
      }, journal && stepsJournal(journal.steps, { retries }));
      this.releases.inc({ outcome: 'released' });
      this.published(key, journal);
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

  /** LeaseWrites: renew the holder's lease for another `leaseMs` from now. */
  async extend(key: string, token: string, leaseMs: number): Promise<boolean> {
    try {
      await this.update(key, {
        UpdateExpression: 'SET #leaseUntil = :leaseUntil',
        ConditionExpression: '#owner = :token AND #status = :inProgress',
        ExpressionAttributeValues: { ':leaseUntil': this.clock() + leaseMs, ':token': token, ':inProgress': DEDUPE_STATUS.inProgress },
      });
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw storeFailure('extend', key, error);
    }
  }

  /** One conditional upsert; undefined when refused but the record no longer explains why. */
  /** DedupeStore.note: a duplicate's step on the existing record (one extra write, duplicates only). */
  note(key: string, step: JourneyStep, counter: 'duplicates'): Promise<boolean> {
    return this.notes.note(storedKey(key), step, counter);
  }

  /** After a write that carried the journal: its steps on the bus, for a live tail in this process. */
  private published(key: string, journal: LeaseJournal | undefined): void {
    for (const step of journal?.steps ?? []) this.journalBus?.publish({ handle: storedKey(key), lineId: journal!.lineId, step: step.step, at: step.at });
  }

  private async claimOnce(key: string, leaseMs: number, redrive: boolean, journal: ClaimOptions['journal']): Promise<ClaimResult | undefined> {
    const now = this.clock();
    const token = randomUUID();
    // An expired record counts as absent: TTL deletes up to days late. A PARKED one is claimable only by its redrive.
    const claimable = ['attribute_not_exists(#pk)', '(#status = :inProgress AND #leaseUntil < :nowMs)', '#expiresAt < :nowSeconds'];
    if (redrive) claimable.push('#status = :parked');
    try {
      const answer = await this.update(key, {
        UpdateExpression:
          'SET #status = :inProgress, #owner = :token, #leaseUntil = :leaseUntil, #expiresAt = :expiresAt REMOVE #completedAt, #parkedAt, #parkReason ADD #attempts :one',
        ConditionExpression: claimable.join(' OR '),
        ExpressionAttributeValues: {
          ':inProgress': DEDUPE_STATUS.inProgress,
          ':token': token,
          ':leaseUntil': now + leaseMs,
          ':expiresAt': this.expiresAt(now),
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
        if (attempt === 1) this.journalBus?.publish({ handle: storedKey(key), lineId, step: 'received', at: journal.facts.receivedAt });
        this.published(key, { lineId, steps: journal.steps });
      }
      return { outcome: 'claimed', lease: new RecordLease(key, attempt, token, this, leaseMs, journal?.facts.lineId) };
    } catch (error) {
      if (!isConditionFailure(error)) throw storeFailure('claim', key, error);
    }
    // dynalite does not return the item with ConditionalCheckFailed, so read it (consistently).
    const record = await this.read(key);
    if (!record) return undefined;
    if (record.status === DEDUPE_STATUS.completed) return { outcome: 'duplicate' };
    if (record.status === DEDUPE_STATUS.parked) return redrive ? undefined : { outcome: 'parked', reason: record.parkReason };
    const leaseUntil = record.leaseUntil ?? 0;
    return leaseUntil >= this.clock() ? { outcome: 'busy', leaseUntil } : undefined;
  }

  /** An UpdateItem on `key`'s record; every `#name` in the expressions stands for the attribute `name`. */
  private update(key: string, input: Omit<UpdateCommandInput, 'TableName' | 'Key' | 'ExpressionAttributeNames'>, journal?: JournalUpdate) {
    const expressions = `${input.UpdateExpression ?? ''} ${input.ConditionExpression ?? ''}`;
    const names = Object.fromEntries([...expressions.matchAll(/#\w+/g)].map(([placeholder]) => [placeholder, placeholder.slice(1)]));
    // The journal's clauses join this write (src/journal/journal-update.ts): no extra request.
    return this.documents.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { pk: storedKey(key) },
        ...input,
        UpdateExpression: mergeUpdateExpression(input.UpdateExpression ?? '', journal),
        ExpressionAttributeNames: { ...names, ...journal?.names },
        ExpressionAttributeValues: { ...input.ExpressionAttributeValues, ...journal?.values },
      }),
    );
  }

  /** The live record of `key`, or undefined when there is none or it has expired. */
  private async read(key: string): Promise<DedupeRecord | undefined> {
    let item: Record<string, unknown> | undefined;
    try {
      ({ Item: item } = await this.documents.send(
        new GetCommand({ TableName: this.tableName, Key: { pk: storedKey(key) }, ConsistentRead: true }),
      ));
    } catch (error) {
      throw storeFailure('read', key, error);
    }
    const record = item as DedupeRecord | undefined;
    if (!record || record.expiresAt < epochSeconds(this.clock())) return undefined;
    return record;
  }

  private expiresAt(now: number): number {
    return epochSeconds(now) + this.ttlSeconds;
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

/**
 * The record's `pk`: the event key's handle, never the key itself (a key carries a wamid, which
 * carries the sender's number). Every `Key: { pk }` of this store is built from it; callers, the
 * DLQ and Bird's Idempotency-Key keep the event key, and a redelivery hashes to the same record.
 */
export function storedKey(eventKey: string): string {
  return eventHandle(eventKey);
}

function epochSeconds(ms: number): number {
  return Math.floor(ms / 1000);
}

function checkKey(key: string): void {
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes === 0 || bytes > MAX_KEY_BYTES) {
    throw new PermanentError('dedupe_invalid_key', `event key must be 1..${MAX_KEY_BYTES} bytes to be a DynamoDB key; got ${bytes}`);
  }
}

function previousState(before: Partial<DedupeRecord> | undefined, token: string): CompletionPrevious {
  if (!before) return 'absent';
  if (before.status === DEDUPE_STATUS.completed) return 'completed';
  if (before.status === DEDUPE_STATUS.parked) return 'parked';
  return before.owner === token ? 'own_lease' : 'lost_lease';
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'UnknownError';
}

function isConditionFailure(error: unknown): boolean {
  return errorName(error) === 'ConditionalCheckFailedException';
}

/** A request DynamoDB rejects as malformed will be rejected again; everything else (throttling, 5xx, network, a missing table) may pass later. */
function storeFailure(operation: string, key: string, error: unknown): GatewayError {
  const name = errorName(error);
  if (name === 'ValidationException') {
    return new PermanentError('dedupe_rejected', `DynamoDB rejected the dedupe ${operation} of ${key} as invalid (${name})`, { cause: error });
  }
  return new RetryableError(
    'dedupe_unavailable',
    `dedupe ${operation} of ${key} failed (${name}); the event will be retried. Check DynamoDB throttling, the network to DynamoDB and that DYNAMODB_DEDUPE_TABLE exists`,
    { cause: error },
  );
}
