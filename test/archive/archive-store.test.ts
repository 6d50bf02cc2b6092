import { S3Client } from '@aws-sdk/client-s3';
import { eraseContactFromArchive } from '../../src/archive/archive-erasure';
import { contactDigest } from '../../src/privacy/pseudonyms';
import { ArchiveObjects } from '../../src/archive/archive-objects';
import { formatCursor, parseCursor, recordsInRange } from '../../src/archive/archive-range';
import { ArchiveReplay, type ReplayRequest } from '../../src/archive/replay';
import { sign } from '../../src/ingress/signature';
import type { Payload } from '../../src/ingress/queued-payload';
import { parseLines, upsertLines } from '../../src/lines/admin';
import { CachedLineRegistry } from '../../src/lines/registry';
import { ReferenceSecretResolver } from '../../src/lines/secrets';
import { DynamoLineStore } from '../../src/lines/store';
import { archiveKey, bodyBytes, contactIndex, mayHoldContact, toRecord, type ArchiveEntry } from '../../src/archive/archive-record';
import { S3PayloadArchive } from '../../src/archive/archive-writer';
import { ArchiveRetentionSweep } from '../../src/archive/retention-sweep';
import { deduplicationId } from '../../src/ingress/queued-payload';
import { createRegistry } from '../../src/observability/metrics';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { capturedLogger } from '../support/logs';
import { startTcpRelay } from '../support/tcp-relay';
import { lineFor, LINES, textMessage, webhookPayload } from '../support/worker';

const PHONE_NUMBER_ID = '106540352242922';

/** A payload from `sender` to the line, as Meta sends it (contacts[].wa_id and messages[].from). */
function payloadFrom(sender: string, wamid: string): Buffer {
  const body = JSON.parse(webhookPayload([{ changes: [{ phoneNumberId: PHONE_NUMBER_ID, messages: [{ ...textMessage(wamid), from: sender }] }] }]));
  body.entry[0].changes[0].value.contacts[0].wa_id = sender;
  return Buffer.from(JSON.stringify(body));
}

function entry(body: Buffer, receivedAt: string, contacts: string[], requestId = `req-${receivedAt}`): ArchiveEntry {
  return { receivedAt, requestId, path: '/webhooks/whatsapp', signature: 'sha256=' + '0'.repeat(64), body, contacts };
}

let aws: AwsHarness;
let objects: ArchiveObjects;
beforeAll(async () => {
  aws = await startAwsHarness();
  objects = new ArchiveObjects({ s3: aws.clients.s3, bucket: aws.names.bucket });
});
afterAll(async () => {
  await aws.stop();
});

async function allKeys(): Promise<string[]> {
  const keys: string[] = [];
  for await (const ref of objects.list('archive/')) keys.push(ref.key);
  return keys;
}

async function clearArchive(): Promise<void> {
  for (const key of await allKeys()) await objects.delete(key);
}

beforeEach(clearArchive);

describe('archive records', () => {
  it('keeps the exact bytes: UTF-8 text as text, anything else as base64', () => {
    const text = Buffer.from('{"entry":[],"name":"Zoë 😀"}');
    const binary = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
    expect(toRecord(entry(text, '2026-01-01T00:00:00.000Z', [])).body).toBe(text.toString('utf8'));
    const record = toRecord(entry(binary, '2026-01-01T00:00:00.000Z', []));
    expect(record.body).toBeUndefined();
    expect(bodyBytes(JSON.parse(JSON.stringify(record))).equals(binary)).toBe(true);
  });

  it('the contact index says "maybe" for every contact it holds and "no" for (almost) every other', () => {
    const held = Array.from({ length: 300 }, (_, i) => `1650555${String(i).padStart(4, '0')}`);
    const index = contactIndex(held);
    expect(held.every((c) => mayHoldContact(index, c))).toBe(true);
    expect(mayHoldContact(index, `+${held[7]}`)).toBe(true);
    const others = Array.from({ length: 1000 }, (_, i) => `4420700${String(i).padStart(4, '0')}`);
    expect(others.filter((c) => mayHoldContact(index, c)).length).toBeLessThan(10);
    expect(mayHoldContact(undefined, 'x')).toBe(true);
  });
});

describe("a replay's FIFO deduplication id", () => {
  it("differs from the original's (SQS would drop a replay within 5 minutes of it) and stays within 128 characters", () => {
    const sha = 'a'.repeat(64);
    for (const route of [{ groupId: 'g' }, { groupId: 'g:status', lane: 'statuses' as const }]) {
      const replayed = deduplicationId(sha, route, 'replay-0123abcd');
      expect(replayed).not.toBe(deduplicationId(sha, route));
      expect(replayed.length).toBeLessThanOrEqual(128);
    }
  });
});

describe('S3PayloadArchive', () => {
  it('writes one object per flush window, within ARCHIVE_FLUSH_MS, and one per full object under load', async () => {
    const registry = createRegistry({ defaultMetrics: false });
    const archive = new S3PayloadArchive({ objects, flushMs: 200, maxBufferBytes: 1 << 20, maxObjectRecords: 50, logger: capturedLogger().logger, registry });
    const t0 = Date.now();
    for (let i = 0; i < 120; i++) archive.add(entry(payloadFrom('16505550001', `wamid.${i}`), new Date(t0 + i).toISOString(), ['16505550001']));
    // Two full objects go at once; the last 20 records within the flush window.
    await new Promise((r) => setTimeout(r, 600));
    const keys = await allKeys();
    expect(keys).toHaveLength(3);
    const range = [];
    for await (const item of recordsInRange(objects, new Date(t0 - 1000), new Date(t0 + 1000))) range.push(item.record!.requestId);
    expect(range).toEqual(Array.from({ length: 120 }, (_, i) => `req-${new Date(t0 + i).toISOString()}`));
    const puts = (await registry.getSingleMetric('wa_ingress_archive_puts_total')!.get()).values.find((v) => v.labels.outcome === 'ok')!.value;
    expect(puts).toBe(3);
  });

  it('while S3 is down it answers nothing, retries, drops past its buffer (counted, logged) and catches up when S3 returns', async () => {
    const registry = createRegistry({ defaultMetrics: false });
    const logs = capturedLogger();
    const relay = await startTcpRelay(aws.standIns.endpoints.s3, false);
    const s3 = new S3Client({ region: 'us-east-1', endpoint: relay.url, forcePathStyle: true, credentials: aws.standIns.credentials, maxAttempts: 1 });
    const body = payloadFrom('16505550002', 'wamid.down');
    const lineBytes = Buffer.byteLength(JSON.stringify(toRecord(entry(body, new Date().toISOString(), [])))) + 1;
    const archive = new S3PayloadArchive({
      objects: new ArchiveObjects({ s3, bucket: aws.names.bucket }),
      flushMs: 50,
      maxBufferBytes: lineBytes * 10,
      logger: logs.logger,
      registry,
      retryBaseMs: 20,
      retryMaxMs: 100,
    });
    try {
      const t0 = Date.now();
      for (let i = 0; i < 12; i++) archive.add(entry(body, new Date(t0 + i).toISOString(), [], `down-${i}`));
      expect(Date.now() - t0).toBeLessThan(50);
      await new Promise((r) => setTimeout(r, 400));
      const metric = async (name: string, labels: Record<string, string> = {}) =>
        (await registry.getSingleMetric(name)!.get()).values.filter((v) => Object.entries(labels).every(([k, w]) => v.labels[k] === w)).reduce((n, v) => n + v.value, 0);
      expect(await metric('wa_ingress_archive_puts_total', { outcome: 'error' })).toBeGreaterThanOrEqual(2);
      expect(await metric('wa_ingress_archive_records_total', { outcome: 'dropped' })).toBe(2);
      expect(await metric('wa_ingress_archive_pending_records')).toBe(10);
      expect(logs.lines.some((l) => l.includes('"event":"archive_dropped"'))).toBe(true);
      expect(logs.lines.some((l) => l.includes('"event":"archive_put_failed"'))).toBe(true);
      expect(await allKeys()).toEqual([]);

      relay.setUp(true);
      await new Promise((r) => setTimeout(r, 400));
      const ids = [];
      for await (const item of recordsInRange(objects, new Date(t0 - 1000), new Date(t0 + 1000))) ids.push(item.record!.requestId);
      expect(ids).toEqual(Array.from({ length: 10 }, (_, i) => `down-${i}`));
      // The outage's records went in one object, not one per flush window.
      expect(await allKeys()).toHaveLength(1);
      expect(await metric('wa_ingress_archive_records_total', { outcome: 'archived' })).toBe(10);
    } finally {
      await relay.stop();
      s3.destroy();
    }
  });
});

describe('erasure reaches the archive', () => {
  it('rewrites only the objects holding the contact, without its payloads; a second run removes nothing', async () => {
    const alice = '16505551111';
    const bob = '16505552222';
    const t0 = Date.parse('2026-03-01T10:00:00.000Z');
    const at = (s: number) => new Date(t0 + s * 1000).toISOString();
    // Object 1: alice and bob; object 2: bob only; object 3: alice only; object 4: alice to another number.
    const write = async (seq: number, records: { sender: string; s: number; phoneNumberId?: string }[]) => {
      const entries = records.map((r) => {
        const body = payloadFrom(r.sender, `wamid.${seq}.${r.s}`);
        const raw = r.phoneNumberId ? Buffer.from(body.toString().replace(PHONE_NUMBER_ID, r.phoneNumberId)) : body;
        return entry(raw, at(r.s), [r.sender], `e-${seq}-${r.s}`);
      });
      await objects.put(archiveKey(entries[0]!.receivedAt, 'test', seq), entries.map((e) => `${JSON.stringify(toRecord(e))}\n`).join(''), entries.length, entries.flatMap((e) => e.contacts));
    };
    await write(1, [{ sender: alice, s: 1 }, { sender: bob, s: 2 }, { sender: alice, s: 3 }]);
    await write(2, [{ sender: bob, s: 4 }]);
    await write(3, [{ sender: alice, s: 5 }]);
    await write(4, [{ sender: alice, s: 6, phoneNumberId: '999999999999' }]);

    const counts = await eraseContactFromArchive(objects, { phoneNumberId: PHONE_NUMBER_ID, contactDigest: contactDigest(`+${alice}`) });
    // Object 2 is never downloaded: its index says it holds no alice.
    expect(counts).toEqual({ objects: 4, read: 3, rewritten: 1, deleted: 1, recordsRemoved: 3 });
    const left = [];
    for await (const item of recordsInRange(objects, new Date(t0 - 3_600_000), new Date(t0 + 3_600_000))) left.push(item.record!.requestId);
    expect(left).toEqual(['e-1-2', 'e-2-4', 'e-4-6']);
    // The rewritten object's index no longer names alice: a second erasure downloads only the other number's object.
    expect(await eraseContactFromArchive(objects, { phoneNumberId: PHONE_NUMBER_ID, contactDigest: contactDigest(alice) })).toEqual({ objects: 3, read: 1, rewritten: 0, deleted: 0, recordsRemoved: 0 });
    // A time range lists only its hours.
    const later = await eraseContactFromArchive(objects, { phoneNumberId: PHONE_NUMBER_ID, contactDigest: contactDigest(bob), from: new Date(t0 + 5 * 3_600_000), to: new Date(t0 + 6 * 3_600_000) });
    expect(later.objects).toBe(0);
  });
});

describe('retention on the embedded default', () => {
  it('the sweep deletes objects older than ARCHIVE_RETENTION_DAYS and keeps the rest', async () => {
    const now = Date.parse('2026-06-30T12:00:00.000Z');
    const day = 86_400_000;
    for (const [seq, age] of [[1, 31], [2, 29], [3, 0]] as const) {
      await objects.put(archiveKey(new Date(now - age * day).toISOString(), 'test', seq), '{}\n', 1, []);
    }
    const sweep = new ArchiveRetentionSweep({ objects, retentionDays: 30, logger: capturedLogger().logger, clock: () => now });
    expect(await sweep.sweep()).toBe(1);
    expect((await allKeys()).map((k) => k.slice(0, 22))).toEqual(['archive/2026/06/01/12/', 'archive/2026/06/30/12/']);
  });
});

describe('replay reads the archive in receive order', () => {
  const SECRET = 'replay-secret';
  /** The producer's interface, recording what it is given: where the queue's own behaviour is not under test. */
  const recordingQueue = () => {
    const sent: Payload[] = [];
    return { sent, queue: { enqueue: async (p: Payload) => void sent.push(p), flush: async () => undefined } };
  };
  const signed = (body: Buffer, receivedAt: string, requestId: string, path = '/webhooks/whatsapp', lineId?: string): ArchiveEntry => ({
    ...entry(body, receivedAt, [], requestId),
    path,
    lineId,
    signature: sign(SECRET, body),
  });
  const putObject = async (writer: string, entries: ArchiveEntry[]) =>
    objects.put(archiveKey(entries[0]!.receivedAt, writer, 0), entries.map((e) => `${JSON.stringify(toRecord(e))}\n`).join(''), entries.length, []);

  it('merges two writers by receive time, filters by line, skips what does not verify, resumes after a cursor', async () => {
    const store = new DynamoLineStore({ documents: aws.clients.documents, tableName: aws.names.linesTable });
    await upsertLines(store, parseLines([lineFor('doc', 'http://127.0.0.1:9/flow'), lineFor('pywa', 'http://127.0.0.1:9/flow')], { production: false }));
    const t0 = Date.parse('2026-04-01T09:59:59.000Z');
    const at = (ms: number) => new Date(t0 + ms).toISOString();
    const doc = (wamid: string) => payloadFrom('16505550001', wamid);
    const pywa = Buffer.from(doc('wamid.p').toString().replace(PHONE_NUMBER_ID, LINES.pywa.phoneNumberId));
    // Writer A and writer B interleave in time; both objects cross the hour (filed under 09).
    await putObject('a', [signed(doc('wamid.1'), at(0), 'r1'), signed(doc('wamid.3'), at(400), 'r3'), signed(doc('wamid.5'), at(1500), 'r5')]);
    await putObject('b', [signed(doc('wamid.2'), at(200), 'r2'), signed(pywa, at(450), 'r4', `/webhooks/whatsapp/${LINES.pywa.lineId}`, LINES.pywa.lineId), { ...signed(doc('wamid.6'), at(1600), 'r6'), signature: sign('wrong', doc('wamid.6')) }]);
    const lines = new CachedLineRegistry({ store, ttlMs: 0, registry: createRegistry({ defaultMetrics: false }) });
    const secrets = new ReferenceSecretResolver({ production: false, cacheTtlMs: 0, env: {} });
    const run = async (request: Omit<ReplayRequest, 'from' | 'to'>) => {
      const { sent, queue } = recordingQueue();
      const pages: string[] = [];
      const replay = new ArchiveReplay({ objects, queue, lines, secrets, appSecrets: [SECRET], pageSize: 2, onPage: (_c, cursor) => void pages.push(formatCursor(cursor)) });
      const counts = await replay.run({ from: new Date(t0 - 1000), to: new Date(t0 + 5000), ...request });
      return { counts, requestIds: sent.map((p) => p.attributes.requestId), sent, pages };
    };

    const all = await run({});
    expect(all.requestIds).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
    expect(all.counts).toEqual({ read: 6, verified: 5, enqueued: 5, skipped: { signature_mismatch: 1 } });
    // Each run dedupes under its own id; groups are the conversation's, as at the ingress.
    expect(all.sent[0]!.deduplicationScope).toMatch(/^replay-[0-9a-f]{8}$/);
    expect(all.sent[0]!.routes).toEqual([{ groupId: `${PHONE_NUMBER_ID}:16505550001` }]);

    expect((await run({ lineId: LINES.pywa.lineId })).requestIds).toEqual(['r4']);
    expect((await run({ lineId: LINES.doc.lineId })).requestIds).toEqual(['r1', 'r2', 'r3', 'r5']);
    expect((await run({ dryRun: true })).counts).toMatchObject({ verified: 5, enqueued: 0 });

    // A page is 2 records read; resume after the first page's cursor: only what follows it.
    const cursor = parseCursor(all.pages[0]!)!;
    expect(cursor.receivedAt).toBe(at(200));
    expect((await run({ after: cursor })).requestIds).toEqual(['r3', 'r4', 'r5']);
  });
});
