import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { createAwsClients, type AwsClients } from '../../src/aws/clients';
import { ensureResources } from '../../src/aws/resources';
import { DynamoDedupeStore, type DynamoDedupeStoreOptions } from '../../src/dedupe/dynamo-dedupe-store';
import type { ClaimResult, EventLease } from '../../src/dedupe/dedupe-store';
import { ConfigError, PermanentError, RetryableError } from '../../src/errors';
import { startAwsStandIns, type AwsStandIns } from '../../src/local/aws-standins';
import { createRegistry, type Registry } from '../../src/observability/metrics';
import { journalFacts } from '../../src/journal/journey';
import { contactDigest, eventHandle, wamidDigest } from '../../src/privacy/pseudonyms';

const TABLE = 'dedupe-test';
const DAY_MS = 86_400_000;
const LEASE_MS = 60_000;

describe('DynamoDedupeStore against dynalite', () => {
  let standIns: AwsStandIns;
  let clients: AwsClients;

  beforeAll(async () => {
    standIns = await startAwsStandIns();
    clients = createAwsClients({
      region: 'us-east-1',
      endpoints: standIns.endpoints,
      forcePathStyle: true,
      credentials: standIns.credentials,
    });
    await ensureResources(clients, { linesTable: 'lines-test', dedupeTable: TABLE, bucket: 'dedupe-test-bucket' });
  });
  afterAll(async () => {
    clients.destroy();
    await standIns.stop();
  });

  /** A store on a movable clock; each test uses its own key so tests do not share records. */
  function setup(overrides: Partial<DynamoDedupeStoreOptions> = {}) {
    const time = { now: Date.UTC(2025, 0, 15, 12, 0, 0) };
    const registry = createRegistry({ defaultMetrics: false });
    const options: DynamoDedupeStoreOptions = {
      documents: clients.documents,
      itemUpdates: clients.itemUpdates,
      tableName: TABLE,
      ttlDays: 15,
      leaseMs: LEASE_MS,
      visibilityTimeoutSeconds: 180,
      clock: () => time.now,
      registry,
      ...overrides,
    };
    return { store: new DynamoDedupeStore(options), time, registry, key: `msg#1234567890#wamid.${randomUUID()}` };
  }

  /** The record of an event key, read where the store keeps it: under the key's handle. */
  async function rawItem(key: string) {
    const { Item } = await clients.documents.send(new GetCommand({ TableName: TABLE, Key: { pk: eventHandle(key) }, ConsistentRead: true }));
    return Item;
  }

  async function counted(registry: Registry, name: string): Promise<Record<string, number>> {
    const metric = await registry.getSingleMetric(name)?.get();
    return Object.fromEntries((metric?.values ?? []).map((v) => [Object.values(v.labels).join(','), v.value]));
  }

  function leaseOf(result: ClaimResult): EventLease {
    if (result.outcome !== 'claimed') throw new Error(`expected claimed, got ${JSON.stringify(result)}`);
    return result.lease;
  }

  /** The lease's token, as stored: only the record shows it (the handle keeps it to itself). */
  async function ownerOf(key: string): Promise<string | undefined> {
    return (await rawItem(key))?.owner as string | undefined;
  }

  it('claims a fresh key, reports busy while the lease is live, and duplicate once completed (counted)', async () => {
    const { store, time, registry, key } = setup();
    const first = await store.claim(key);
    expect(first).toEqual({ outcome: 'claimed', lease: expect.objectContaining({ key, attempt: 1, lost: false }) });

    time.now += LEASE_MS - 1;
    expect(await store.claim(key)).toEqual({ outcome: 'busy', leaseUntil: time.now - (LEASE_MS - 1) + LEASE_MS });

    await leaseOf(first).complete();
    expect(await store.claim(key)).toEqual({ outcome: 'duplicate' });
    // Long after the lease, still a duplicate: completion is not a lease.
    time.now += 6 * DAY_MS;
    expect(await store.claim(key)).toEqual({ outcome: 'duplicate' });

    expect(await counted(registry, 'wa_ingress_dedupe_claims_total')).toEqual({ claimed: 1, busy: 1, duplicate: 2, parked: 0 });
    expect((await counted(registry, 'wa_ingress_dedupe_completions_total')).own_lease).toBe(1);
  });

  it('stores status, owner, lease in epoch ms and expiresAt in epoch seconds more than 14 days (the DLQ retention) ahead', async () => {
    const { store, time, key } = setup();
    const claimedAt = time.now;
    const lease = leaseOf(await store.claim(key, { leaseMs: 30_000 }));
    const item = await rawItem(key);
    expect(item).toMatchObject({ pk: eventHandle(key), status: 'INPROGRESS', owner: expect.any(String), leaseUntil: claimedAt + 30_000, attempts: 1 });
    expect(Number.isInteger(item?.expiresAt)).toBe(true);
    expect(item?.expiresAt).toBe(Math.floor(claimedAt / 1000) + 15 * 86_400);
    expect(item?.expiresAt).toBeGreaterThan(claimedAt / 1000 + 14 * 86_400);

    time.now += 5_000;
    await lease.complete();
    const done = await rawItem(key);
    expect(done).toMatchObject({ status: 'COMPLETED', expiresAt: item?.expiresAt, completedAt: time.now });
    expect(done).not.toHaveProperty('owner');
    expect(done).not.toHaveProperty('leaseUntil');
  });

  it('lets another worker take over once a crashed worker’s lease has lapsed, with a new token', async () => {
    const { store, time, key } = setup();
    await store.claim(key);
    const crashed = await ownerOf(key);
    time.now += LEASE_MS; // the lease ends at exactly this instant: still held
    expect((await store.claim(key)).outcome).toBe('busy');
    time.now += 1;
    const second = await store.claim(key);
    expect(leaseOf(second).attempt).toBe(2);
    expect(await ownerOf(key)).not.toBe(crashed);
    expect(await rawItem(key)).toMatchObject({ leaseUntil: time.now + LEASE_MS });
  });

  it('keepAlive renews a live lease (a third of its length apart), so a long event is not taken over while still worked on', async () => {
    const { store, time, key } = setup();
    const lease = leaseOf(await store.claim(key, { leaseMs: 3_000 }));
    lease.keepAlive();
    time.now += 2_500;
    await new Promise((r) => setTimeout(r, 1_300)); // one renewal (every 1 s): the lease now ends 3 s after this clock
    time.now += 2_000; // past the original lease, within the renewed one
    expect((await store.claim(key)).outcome).toBe('busy');
    expect(lease.lost).toBe(false);
    await lease.complete(); // ends the renewal too
    expect((await store.claim(key)).outcome).toBe('duplicate');
    expect(await rawItem(key)).not.toHaveProperty('leaseUntil');
  });

  it('keepAlive reports a lease that lapsed and was taken over as lost, and stops renewing', async () => {
    const { store, time, key } = setup();
    const slow = leaseOf(await store.claim(key, { leaseMs: 3_000 }));
    time.now += 3_001;
    const fast = leaseOf(await store.claim(key));
    const fastOwner = await ownerOf(key);
    let lost = 0;
    slow.keepAlive({ onLost: () => (lost += 1) });
    await new Promise((r) => setTimeout(r, 2_300));
    expect(slow.lost).toBe(true);
    expect(lost).toBe(1);
    expect(await ownerOf(key)).toBe(fastOwner);
    // Releasing the lost lease gives nothing back: the new holder keeps it.
    await slow.release();
    expect((await store.claim(key)).outcome).toBe('busy');
    await fast.release();
  });

  it('keeps no event key, wamid or number: the record sits under the key handle, indexed by digests, and still dedupes', async () => {
    const { store, key } = setup();
    const wamid = key.split('#')[2]!;
    const sender = '16505550123';
    const event = { key, kind: 'message' as const, field: 'messages', phoneNumberId: '1234567890', contact: { userKey: sender, waId: sender }, message: { id: wamid, type: 'text', text: 'hi' }, raw: { from: sender, id: wamid } };
    const facts = { ...journalFacts(event, 'line-x', new Date().toISOString()), requestId: 'r-1', bytes: 10 };
    const lease = leaseOf(await store.claim(key, { journal: { facts, steps: [] } }));
    await lease.complete();
    const { Items = [] } = await clients.documents.send(new ScanCommand({ TableName: TABLE }));
    const mine = Items.filter((item) => item.pk === eventHandle(key));
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ wamid: wamidDigest(wamid), contactHash: contactDigest(sender), contact: '…0123' });
    const everything = JSON.stringify(Items);
    for (const secret of [key, wamid, sender]) expect(everything).not.toContain(secret);
    // The same event again (a Meta retry, a redelivery): the store hashes its key to the same record.
    expect(await store.claim(key)).toEqual({ outcome: 'duplicate' });
  });

  it('parks once: PARKED with its reason and a fresh expiry; later claims see parked, only a redrive claims it again', async () => {
    const { store, time, registry, key } = setup();
    const lease = leaseOf(await store.claim(key));
    time.now += 3 * DAY_MS; // parked late in the claim's window: the expiry must start again from here
    await lease.park('media_token_rejected');
    expect(await rawItem(key)).toEqual({
      pk: eventHandle(key),
      status: 'PARKED',
      parkReason: 'media_token_rejected',
      parkedAt: time.now,
      attempts: 1,
      expiresAt: Math.floor(time.now / 1000) + 15 * 86_400,
    });
    expect(await store.claim(key)).toEqual({ outcome: 'parked', reason: 'media_token_rejected' });
    // Still parked on the DLQ's last day (14 days later), long after any lease.
    time.now += 14 * DAY_MS;
    expect(await store.claim(key)).toEqual({ outcome: 'parked', reason: 'media_token_rejected' });

    const redriven = leaseOf(await store.claim(key, { redrive: true }));
    expect(redriven.attempt).toBe(2);
    expect(await rawItem(key)).toMatchObject({ status: 'INPROGRESS' });
    expect(await rawItem(key)).not.toHaveProperty('parkReason');
    expect((await store.claim(key, { redrive: true })).outcome).toBe('busy'); // a second copy of the redrive waits
    await redriven.complete();
    expect(await store.claim(key, { redrive: true })).toEqual({ outcome: 'duplicate' });
    expect(await counted(registry, 'wa_ingress_dedupe_parks_total')).toEqual({ parked: 1 });
    expect(await counted(registry, 'wa_ingress_dedupe_claims_total')).toMatchObject({ parked: 2, duplicate: 1 });
  });

  it('a lost lease cannot park the event its new holder works on; an expired PARKED record counts as absent', async () => {
    const { store, time, registry, key } = setup();
    const slow = leaseOf(await store.claim(key));
    time.now += LEASE_MS + 1;
    const fast = leaseOf(await store.claim(key));
    await slow.park('bird_rejected_400');
    expect(await rawItem(key)).toMatchObject({ status: 'INPROGRESS' });
    expect(await counted(registry, 'wa_ingress_dedupe_parks_total')).toEqual({ not_owner: 1 });

    await fast.park('bird_rejected_400');
    time.now += 15 * DAY_MS + 1_000;
    expect(leaseOf(await store.claim(key)).attempt).toBe(3);
  });

  it('honours a shorter lease given per claim', async () => {
    const { store, time, key } = setup();
    await store.claim(key, { leaseMs: 1_000 });
    time.now += 1_001;
    expect((await store.claim(key)).outcome).toBe('claimed');
  });

  it('release frees the key at once for the owner only, and never removes a completed record', async () => {
    const { store, registry, key } = setup();
    const first = leaseOf(await store.claim(key));
    const token = (await ownerOf(key))!;

    await store.leases.release(key, 'not-the-owner');
    expect(await store.claim(key)).toMatchObject({ outcome: 'busy' });

    await first.release();
    const next = await store.claim(key);
    expect(leaseOf(next).attempt).toBe(2);
    // The first owner's token is spent: releasing with it now must not free the new owner's lease.
    await store.leases.release(key, token);
    expect(await store.claim(key)).toMatchObject({ outcome: 'busy' });

    await leaseOf(next).complete();
    await store.leases.release(key, (await ownerOf(key)) ?? 'completed: no owner');
    expect(await rawItem(key)).toMatchObject({ status: 'COMPLETED' });
    expect(await store.claim(key)).toEqual({ outcome: 'duplicate' });
    expect(await counted(registry, 'wa_ingress_dedupe_releases_total')).toEqual({ released: 1, not_owner: 3 });
  });

  it('treats a completed record past its expiresAt as absent (TTL deletes late)', async () => {
    const { store, time, key } = setup({ ttlDays: 15 });
    await leaseOf(await store.claim(key)).complete();
    time.now += 15 * DAY_MS - 1_000;
    expect(await store.claim(key)).toEqual({ outcome: 'duplicate' });
    time.now += 2_000;
    const again = await store.claim(key);
    expect(again.outcome).toBe('claimed');
    expect(await rawItem(key)).toMatchObject({ status: 'INPROGRESS', expiresAt: Math.floor(time.now / 1000) + 15 * 86_400 });
    expect(await rawItem(key)).not.toHaveProperty('completedAt');
  });

  it('completes idempotently, also for a worker whose lease lapsed and whose event another worker finished', async () => {
    const { store, time, registry, key } = setup();
    const slow = leaseOf(await store.claim(key));
    time.now += LEASE_MS + 1;
    const fast = leaseOf(await store.claim(key));
    const fastToken = (await ownerOf(key))!;

    // The slow worker finishes while the fast one still holds the lease: COMPLETED is the truth.
    await slow.complete();
    expect(await store.claim(key)).toEqual({ outcome: 'duplicate' });
    await expect(fast.complete()).resolves.toBeUndefined();
    await store.leases.release(key, fastToken);
    await expect(store.leases.complete(key, 'slow-token')).resolves.toBeUndefined();
    expect(await rawItem(key)).toMatchObject({ status: 'COMPLETED' });
    expect(await counted(registry, 'wa_ingress_dedupe_completions_total')).toEqual({ lost_lease: 1, completed: 2 });
  });

  it('completing a key whose record vanished writes it COMPLETED with an expiry', async () => {
    const { store, time, key } = setup();
    await store.leases.complete(key, 'token-of-a-record-deleted-meanwhile');
    expect(await rawItem(key)).toMatchObject({ status: 'COMPLETED', expiresAt: Math.floor(time.now / 1000) + 15 * 86_400 });
    expect(await store.claim(key)).toEqual({ outcome: 'duplicate' });
  });

  it('costs one conditional write to claim and one write to complete a fresh event, with no reads', async () => {
    const counting = new DynamoDBClient({ region: 'us-east-1', endpoint: standIns.endpoints.dynamodb, credentials: standIns.credentials });
    const calls: string[] = [];
    counting.middlewareStack.add(
      (next, context) => (args) => {
        const consistent = (args.input as { ConsistentRead?: boolean }).ConsistentRead ? ' (consistent)' : '';
        calls.push(`${String(context.commandName)}${consistent}`);
        return next(args);
      },
      { step: 'initialize' },
    );
    try {
      const { store, key } = setup({ documents: DynamoDBDocumentClient.from(counting), itemUpdates: counting });
      await leaseOf(await store.claim(key)).complete();
      expect(calls).toEqual(['UpdateItemCommand', 'UpdateItemCommand']);
      // A duplicate costs the refused write and one consistent read.
      calls.length = 0;
      expect(await store.claim(key)).toEqual({ outcome: 'duplicate' });
      expect(calls).toEqual(['UpdateItemCommand', 'GetItemCommand (consistent)']);
    } finally {
      counting.destroy();
    }
  });

  it('claims again when the holder’s lease lapses between the refused claim and the read', async () => {
    const { store: holder, time, key } = setup();
    await holder.claim(key);
    // The contender's first clock reading still sees the lease live; every later one is past it.
    let readings = 0;
    const { store: contender, registry } = setup({ clock: () => (readings++ === 0 ? time.now + 1 : time.now + LEASE_MS + 1) });
    expect(await contender.claim(key)).toMatchObject({ outcome: 'claimed', lease: expect.objectContaining({ attempt: 2 }) });
    expect(readings).toBeGreaterThan(2);
    expect(await counted(registry, 'wa_ingress_dedupe_claims_total')).toMatchObject({ claimed: 1, busy: 0 });
  });

  it('claims again when the completed record expires between the refused claim and the read', async () => {
    const { store: first, time, key } = setup();
    await leaseOf(await first.claim(key)).complete();
    const expiry = time.now + 15 * DAY_MS;
    let readings = 0;
    const { store: late } = setup({ clock: () => (readings++ === 0 ? expiry - 1_000 : expiry + 1_000) });
    expect(await late.claim(key)).toMatchObject({ outcome: 'claimed', lease: expect.objectContaining({ attempt: 2 }) });
  });

  it('gives exactly one of 20 concurrent claimers the key', async () => {
    const { store, registry, key } = setup();
    const results = await Promise.all(Array.from({ length: 20 }, () => store.claim(key)));
    expect(results.filter((r) => r.outcome === 'claimed')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'busy')).toHaveLength(19);
    expect(await counted(registry, 'wa_ingress_dedupe_claims_total')).toEqual({ claimed: 1, busy: 19, duplicate: 0, parked: 0 });
  });

  it('refuses a lease longer than the visibility timeout, and a window no longer than the DLQ retention (14 days)', () => {
    expect(() => setup({ leaseMs: 180_001, visibilityTimeoutSeconds: 180 })).toThrow(ConfigError);
    expect(() => setup({ leaseMs: 180_000, visibilityTimeoutSeconds: 180 })).not.toThrow();
    expect(() => setup({ ttlDays: 8 })).toThrow(/DEDUPE_TTL_DAYS/);
    expect(() => setup({ ttlDays: 14 })).toThrow(/DEDUPE_TTL_DAYS/);
    expect(() => setup({ ttlDays: 15 })).not.toThrow();
    expect(() => setup({ leaseMs: 0 })).toThrow(ConfigError);
  });

  it('refuses a per-claim lease longer than the visibility timeout, and an empty key', async () => {
    const { store, key } = setup();
    await expect(store.claim(key, { leaseMs: 180_001 })).rejects.toThrow(RangeError);
    await expect(store.claim('')).rejects.toThrow(PermanentError);
  });

  it('turns a missing table or an unreachable DynamoDB into RetryableError(dedupe_unavailable)', async () => {
    const { store: noTable, key } = setup({ tableName: 'no-such-table' });
    await expect(noTable.claim(key)).rejects.toMatchObject({ reason: 'dedupe_unavailable', retryable: true });

    const unreachable = new DynamoDBClient({
      region: 'us-east-1',
      endpoint: 'http://127.0.0.1:1',
      credentials: standIns.credentials,
      maxAttempts: 1,
    });
    try {
      const { store } = setup({ documents: DynamoDBDocumentClient.from(unreachable), itemUpdates: unreachable });
      for (const attempt of [() => store.claim(key), () => store.leases.complete(key, 't'), () => store.leases.release(key, 't')]) {
        const error = await attempt().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(RetryableError);
        expect(error).toMatchObject({ reason: 'dedupe_unavailable' });
      }
    } finally {
      unreachable.destroy();
    }
  });
});
