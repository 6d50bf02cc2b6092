import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { ensureResources } from '../../src/aws/resources';
import { DynamoDedupeStore } from '../../src/dedupe/dynamo-dedupe-store';
import { MediaRetentionSweep } from '../../src/media/media-retention-sweep';
import { mediaObjectKey } from '../../src/media/media-object';
import { contactKey } from '../../src/outbound/record';
import { DynamoErasureStore, erasedMarkerKey } from '../../src/privacy/erasure/dynamo-erasure-store';
import { erasureView } from '../../src/privacy/erasure/erasure';
import { ErasureRunner } from '../../src/privacy/erasure/erasure-runner';
import { ErasureService } from '../../src/privacy/erasure/erasure-service';
import { ErasedContactRedriveGuard } from '../../src/privacy/erasure/redrive-guard';
import type { ErasureStep } from '../../src/privacy/erasure/steps/erasure-step';
import { DEDUPE_KEPT_ATTRIBUTES, JournalErasureStep } from '../../src/privacy/erasure/steps/journal-erasure';
import { MediaErasureStep } from '../../src/privacy/erasure/steps/media-erasure';
import { OutboundErasureStep } from '../../src/privacy/erasure/steps/outbound-erasure';
import { TurnBufferErasureStep } from '../../src/privacy/erasure/steps/turn-erasure';
import { storedKey } from '../../src/dedupe/dedupe-table';
import { contactDigest, lastFour, wamidDigest } from '../../src/privacy/pseudonyms';
import { DeadLetterQueue } from '../../src/queue/dlq';
import { turnBufferKey } from '../../src/worker/turns/turn-store';
import { ContactStates, DynamoContactStore } from '../../src/conversation';
import { envelopeToEvents } from '../../src/meta/envelope';
import express from 'express';
import { parseLines, upsertLines } from '../../src/lines/admin';
import { CachedLineRegistry } from '../../src/lines/registry';
import { ReferenceSecretResolver } from '../../src/lines/secrets';
import { DynamoLineStore } from '../../src/lines/store';
import { createRegistry } from '../../src/observability/metrics';
import { createErasureRouter } from '../../src/privacy/erasure/erasure-api';
import { LINES, lineFor } from '../support/worker';
import { createQueuePair, startAwsHarness, type AwsHarness } from '../support/aws';
import { capturedLogger } from '../support/logs';

const ERASURES = 'erasures';
const LINE = { lineId: 'line-a', phoneNumberId: '1110001' };
const OTHER_LINE = { lineId: 'line-b', phoneNumberId: '2220002' };

let aws: AwsHarness;
let seq = 0;

beforeAll(async () => {
  aws = await startAwsHarness();
  await ensureResources(aws.clients, { ...aws.names, erasuresTable: ERASURES });
});
afterAll(async () => aws?.stop());

/** A fresh contact per test, so tests never share data on the stand-ins. */
function newContact(): string {
  seq += 1;
  return `1650555${String(1000 + seq)}${String(Date.now()).slice(-3)}`;
}

async function putMedia(line: typeof LINE, contact: string, n: number): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    const Key = mediaObjectKey({ lineId: line.lineId, contact, wamid: `wamid.${contact}.${i}`, mediaId: `m${i}`, receivedAt: new Date(), mimeType: 'image/jpeg' });
    await aws.clients.s3.send(new PutObjectCommand({ Bucket: aws.names.bucket, Key, Body: `bytes of ${contact} ${i}` }));
    keys.push(Key);
  }
  return keys;
}

/** The event key of the contact's `i`th message (what Meta's retry of it claims again). */
const journalKey = (line: typeof LINE, contact: string, i: number) => `msg#${line.phoneNumberId}#wamid.${contact}.${i}`;

/**
 * Dedupe records as the pipeline leaves them: COMPLETED, keyed by the event key's handle, with the
 * journal's facts (digests, last four) and the stored event's projection. Returns their `pk`s.
 */
async function putJournal(line: typeof LINE, contact: string, n: number): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    const pk = storedKey(journalKey(line, contact, i));
    await aws.clients.documents.send(
      new PutCommand({
        TableName: aws.names.dedupeTable,
        Item: {
          pk,
          status: 'COMPLETED',
          expiresAt: Math.floor(Date.now() / 1000) + 86_400,
          completedAt: Date.now(),
          attempts: 1,
          lineId: line.lineId,
          receivedAt: new Date(Date.now() - i * 1000).toISOString(),
          wamid: wamidDigest(`wamid.${contact}.${i}`),
          contactHash: contactDigest(contact),
          contact: lastFour(contact),
          kind: 'message',
          type: 'text',
          event: JSON.stringify({ handle: pk, contact: { lastFour: lastFour(contact), digest: contactDigest(contact) }, message: { id: wamidDigest(`wamid.${contact}.${i}`), text: `hello ${i}` } }),
          journey: [{ at: new Date().toISOString(), step: 'completed' }],
          updatedAt: new Date().toISOString(),
        },
      }),
    );
    keys.push(pk);
  }
  return keys;
}

async function putOutbound(line: typeof LINE, contact: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const pk = `ob_${line.lineId}_${contact}_${i}`;
    const createdAt = new Date(Date.now() + i).toISOString();
    await aws.clients.documents.send(
      new PutCommand({ TableName: aws.names.outboundTable, Item: { pk, id: pk, lineId: line.lineId, to: contact, contactKey: contactKey(line.lineId, contact), createdAt, body: { text: { body: 'echo' } } } }),
    );
    ids.push(pk);
  }
  return ids;
}

/** A text message from a person Meta names by both ids, as a webhook's event. */
function messageFrom(ids: { from: string; from_user_id: string }) {
  return envelopeToEvents({
    object: 'whatsapp_business_account',
    entry: [{ id: 'waba', changes: [{ field: 'messages', value: { metadata: { phone_number_id: LINE.phoneNumberId }, messages: [{ ...ids, id: `wamid.${ids.from}`, timestamp: String(Math.floor(Date.now() / 1000)), type: 'text', text: { body: 'hi' } }] } }] }],
  })[0]!;
}

async function putTurnBuffer(line: typeof LINE, contact: string): Promise<string> {
  const pk = turnBufferKey(line.lineId, contact);
  await aws.clients.documents.send(new PutCommand({ TableName: aws.names.dedupeTable, Item: { pk, lineId: line.lineId, items: [{ key: 'k', at: 1, body: JSON.stringify({ contact }) }] } }));
  return pk;
}

async function seed(line: typeof LINE, contact: string) {
  return {
    media: await putMedia(line, contact, 3),
    journal: await putJournal(line, contact, 4),
    outbound: await putOutbound(line, contact, 2),
    turns: [await putTurnBuffer(line, contact)],
  };
}

function steps(): ErasureStep[] {
  const { documents, s3 } = aws.clients;
  return [
    new MediaErasureStep({ s3, bucket: aws.names.bucket }),
    new JournalErasureStep({ documents, tableName: aws.names.dedupeTable }),
    new OutboundErasureStep({ documents, tableName: aws.names.outboundTable }),
    new TurnBufferErasureStep({ documents, tableName: aws.names.dedupeTable }),
  ];
}

function rig(options: { steps?: ErasureStep[]; leaseMs?: number; batchSize?: number } = {}) {
  const log = capturedLogger('info');
  const store = new DynamoErasureStore({ documents: aws.clients.documents, tableName: ERASURES });
  const list = options.steps ?? steps();
  const runner = new ErasureRunner({ store, steps: list, logger: log.logger, leaseMs: options.leaseMs ?? 60_000, batchSize: options.batchSize ?? 2 });
  const service = new ErasureService({ store, stepNames: list.map((s) => s.name), logger: log.logger });
  return { store, runner, service, log };
}

async function exists(table: string, pk: string) {
  return (await aws.clients.documents.send(new GetCommand({ TableName: table, Key: { pk }, ConsistentRead: true }))).Item;
}

async function mediaKeys(prefix = 'media/'): Promise<string[]> {
  const out = await aws.clients.s3.send(new ListObjectsV2Command({ Bucket: aws.names.bucket, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key!);
}

describe('erasure on the stand-ins', () => {
  it('removes the contact’s media, journal facts, outbound records and turn buffer on that line, counts them, and touches nobody else', async () => {
    const contact = newContact();
    const other = newContact();
    const mine = await seed(LINE, contact);
    const theirs = await seed(LINE, other);
    const elsewhere = await seed(OTHER_LINE, contact);
    const { runner, service, store, log } = rig();

    const { view } = await service.request(LINE, `+${contact}`, 'api');
    expect(view).toMatchObject({ status: 'queued', contact: `…${contact.slice(-4)}` });
    const [done] = (await runner.runPending()).filter((r) => r.id === view.id);
    expect(done!.counts).toEqual({ media: 3, journal: 4, outbound: 2, turns: 1 });
    expect(erasureView((await store.get(view.id))!, runner.stepNames)).toMatchObject({ status: 'done', removed: { media: 3, journal: 4, outbound: 2, turns: 1 } });

    const all = await mediaKeys();
    for (const key of mine.media) expect(all).not.toContain(key);
    for (const key of [...theirs.media, ...elsewhere.media]) expect(all).toContain(key);
    for (const pk of mine.outbound) expect(await exists(aws.names.outboundTable, pk)).toBeUndefined();
    for (const pk of [...theirs.outbound, ...elsewhere.outbound]) expect(await exists(aws.names.outboundTable, pk)).toBeDefined();
    expect(await exists(aws.names.dedupeTable, mine.turns[0]!)).toBeUndefined();
    expect(await exists(aws.names.dedupeTable, theirs.turns[0]!)).toBeDefined();
    expect(await exists(aws.names.dedupeTable, elsewhere.turns[0]!)).toBeDefined();

    // The dedupe records stay, with only what dedupe needs.
    for (const pk of mine.journal) {
      const item = (await exists(aws.names.dedupeTable, pk))!;
      expect(Object.keys(item).every((name) => DEDUPE_KEPT_ATTRIBUTES.has(name))).toBe(true);
      expect(item).toMatchObject({ pk, status: 'COMPLETED' });
    }
    for (const pk of [...theirs.journal, ...elsewhere.journal]) expect((await exists(aws.names.dedupeTable, pk))!.event).toEqual(expect.any(String));

    // The audit trail: logged with the digest and the counts, never the number; the record holds no number either.
    const audit = log.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.event === 'erasure_completed');
    expect(audit).toMatchObject({ erasureId: view.id, lineId: LINE.lineId, contactDigest: contactDigest(contact), counts: { media: 3, journal: 4, outbound: 2, turns: 1 } });
    expect(log.text()).not.toContain(contact);
    const table = await aws.clients.documents.send(new ScanCommand({ TableName: ERASURES }));
    expect(JSON.stringify(table.Items)).not.toContain(contact);
    expect(await store.erasedAt(LINE.phoneNumberId, contactDigest(contact))).toBe(view.requestedAt);
  });

  it('erasing a person by wa_id also removes the turn buffer kept under their BSUID (the conversation key), learned from their contact state', async () => {
    const waId = newContact();
    const userId = `US.${waId}`;
    const states = new ContactStates({ store: new DynamoContactStore({ documents: aws.clients.documents, tableName: aws.names.contactsTable }), registry: createRegistry(), cacheMs: 0 });
    await states.observe(LINE.lineId, messageFrom({ from: waId, from_user_id: userId }));
    const buffer = await putTurnBuffer(LINE, userId);
    const bystander = await putTurnBuffer(LINE, `US.${newContact()}`);
    const { documents } = aws.clients;
    const { runner, service } = rig({ steps: [new TurnBufferErasureStep({ documents, tableName: aws.names.dedupeTable, contactsTableName: aws.names.contactsTable })] });

    const { view } = await service.request(LINE, waId, 'api');
    const [done] = (await runner.runPending()).filter((r) => r.id === view.id);
    expect(done!.counts).toEqual({ turns: 1 });
    expect(await exists(aws.names.dedupeTable, buffer)).toBeUndefined();
    expect(await exists(aws.names.dedupeTable, bystander)).toBeDefined();
  });

  it('a Meta retry of an erased message is still a duplicate', async () => {
    const contact = newContact();
    await seed(LINE, contact);
    const { runner, service } = rig();
    await service.request(LINE, contact, 'api');
    await runner.runPending();
    const dedupe = new DynamoDedupeStore({ documents: aws.clients.documents, tableName: aws.names.dedupeTable, ttlDays: 15, leaseMs: 10_000, visibilityTimeoutSeconds: 30 });
    expect((await dedupe.claim(journalKey(LINE, contact, 0))).outcome).toBe('duplicate');
  });

  it('is idempotent: the same line and contact while pending give the same id; once done, a new request is a new erasure', async () => {
    const contact = newContact();
    await seed(LINE, contact);
    const { runner, service } = rig();
    const first = await service.request(LINE, contact, 'api');
    const again = await service.request(LINE, `+${contact}`, 'console');
    expect(again).toMatchObject({ created: false, view: { id: first.view.id } });
    expect(first.created).toBe(true);
    await runner.runPending();
    const later = await service.request(LINE, contact, 'api');
    expect(later.created).toBe(true);
    expect(later.view.id).not.toBe(first.view.id);
    const [done] = (await runner.runPending()).filter((r) => r.id === later.view.id);
    expect(done!.counts).toEqual({ media: 0, journal: 0, outbound: 0, turns: 0 });
  });

  it('resumes after a crash mid-batch and counts what the dead runner removed exactly once', async () => {
    const contact = newContact();
    const mine = await seed(LINE, contact);
    // The journal step dies right after removing its first batch, before the count is checkpointed.
    let crashes = 1;
    const crashing = steps().map((step): ErasureStep => {
      if (step.name !== 'journal') return step;
      return {
        name: step.name,
        find: (target, limit) => step.find(target, limit),
        remove: async (target, ids) => {
          await step.remove(target, ids);
          if (crashes-- > 0) throw new Error('killed');
        },
      };
    });
    const dead = rig({ steps: crashing, leaseMs: 2000 });
    const { view } = await dead.service.request(LINE, contact, 'api');
    expect((await dead.runner.runPending()).map((r) => r.id)).not.toContain(view.id);
    const midway = (await dead.store.get(view.id))!;
    expect(midway).toMatchObject({ status: 'running', stepsDone: ['media'], counts: { media: 3 }, batch: { step: 'journal' } });
    expect(midway.batch!.ids.every((id) => mine.journal.includes(id)) && midway.batch!.ids.length === 2).toBe(true);

    // Another runner cannot take it while the lease holds; after it lapses it finishes with exact counts.
    const next = rig();
    expect((await next.runner.runPending()).map((r) => r.id)).not.toContain(view.id);
    await new Promise((r) => setTimeout(r, 2100));
    const [done] = (await next.runner.runPending()).filter((r) => r.id === view.id);
    expect(done!.counts).toEqual({ media: 3, journal: 4, outbound: 2, turns: 1 });
    expect((await next.store.get(view.id))!.batch).toBeUndefined();
  });

  it('refuses at redrive a parked message of the erased contact received before the erasure, and redrives the others', async () => {
    const contact = newContact();
    const other = newContact();
    const { queueUrl, dlqUrl } = await createQueuePair(aws.clients.sqs, `erasure-redrive-${Date.now()}`, { maxReceiveCount: 5 });
    const payload = (from: string) =>
      JSON.stringify({ object: 'whatsapp_business_account', entry: [{ id: 'w', changes: [{ field: 'messages', value: { metadata: { phone_number_id: LINE.phoneNumberId }, messages: [{ from, id: `wamid.${from}`, type: 'text', text: { body: 'hi' } }] } }] }] });
    const receivedAt = new Date().toISOString();
    for (const from of [contact, other]) {
      await aws.clients.sqs.send(
        new SendMessageCommand({ QueueUrl: dlqUrl, MessageBody: payload(from), MessageAttributes: { receivedAt: { DataType: 'String', StringValue: receivedAt }, reason: { DataType: 'String', StringValue: 'unrouted' } } }),
      );
    }
    const { service, store } = rig();
    await service.request(LINE, contact, 'api');
    const dlq = new DeadLetterQueue({ sqs: aws.clients.sqs, queueUrl, dlqUrl, waitTimeSeconds: 0, holdSeconds: 1, refuse: new ErasedContactRedriveGuard(store).refuse });
    const result = await dlq.redrive({ all: true });
    expect(result.redriven).toHaveLength(1);
    expect(result.failed).toEqual([{ id: expect.any(String), error: 'erased' }]);
    const redriven = await aws.drainQueue(queueUrl);
    expect(redriven.map((m) => m.Body)).toEqual([payload(other)]);
    expect(await exists(ERASURES, erasedMarkerKey(LINE.phoneNumberId, contactDigest(contact)))).toBeDefined();
  });

  it('sweeps media older than MEDIA_RETENTION_DAYS (the embedded default has no lifecycle rule)', async () => {
    const contact = newContact();
    const [key] = await putMedia(LINE, contact, 1);
    const { logger } = capturedLogger('info');
    const sweep = (days: number) => new MediaRetentionSweep({ s3: aws.clients.s3, bucket: aws.names.bucket, retentionDays: 30, logger, now: () => Date.now() + days * 86_400_000 }).sweep();
    expect(await sweep(29)).toBe(0);
    await expect(aws.clients.s3.send(new GetObjectCommand({ Bucket: aws.names.bucket, Key: key }))).resolves.toBeDefined();
    expect(await sweep(31)).toBeGreaterThanOrEqual(1);
    expect(await mediaKeys()).not.toContain(key);
  });
});

describe('erasure API', () => {
  const KEY = 'erasure-api-key-0123456789';
  const servers: { close(cb: () => void): void }[] = [];
  let goodUrl: string;
  let brokenUrl: string;
  let goodService: ErasureService;

  beforeAll(async () => {
    const lineStore = new DynamoLineStore({ documents: aws.clients.documents, tableName: aws.names.linesTable });
    await upsertLines(lineStore, parseLines([{ ...lineFor('doc', 'http://127.0.0.1:1/flow'), outboundKeys: [KEY] }, lineFor('pywa', 'http://127.0.0.1:1/flow')], { production: false }));
    const lines = new CachedLineRegistry({ store: lineStore, ttlMs: 0, registry: createRegistry({ defaultMetrics: false }) });
    const { logger } = capturedLogger('info');
    const serve = async (erasures: ErasureService): Promise<string> => {
      const app = express();
      app.use(createErasureRouter({ lines, secrets: new ReferenceSecretResolver({ production: false, cacheTtlMs: 0 }), erasures, logger }));
      const server = app.listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      servers.push(server);
      return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    };
    goodService = rig().service;
    goodUrl = await serve(goodService);
    // An erasures table that does not exist: nothing can be recorded.
    brokenUrl = await serve(new ErasureService({ store: new DynamoErasureStore({ documents: aws.clients.documents, tableName: 'no-such-table' }), stepNames: [], logger }));
  });
  afterAll(async () => {
    await Promise.all(servers.map((server) => new Promise<void>((r) => server.close(() => r()))));
  });

  const call = (path: string, method = 'GET', key = KEY, base = goodUrl) => fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${key}` } });

  it('202 with the id once recorded; 503 with Retry-After when it cannot be recorded', async () => {
    const contact = newContact();
    const ok = await call(`/v1/lines/${LINES.doc.lineId}/contacts/${contact}`, 'DELETE');
    expect(ok.status).toBe(202);
    const body = (await ok.json()) as { id: string; status: string };
    expect(body).toEqual({ id: expect.stringMatching(/^er_[A-Za-z0-9_-]{22}$/), status: 'queued' });
    const view = (await (await call(`/v1/lines/${LINES.doc.lineId}/erasures/${body.id}`)).json()) as Record<string, unknown>;
    expect(view).toMatchObject({ id: body.id, status: 'queued', lineId: LINES.doc.lineId, contact: `…${contact.slice(-4)}` });
    expect(JSON.stringify(view)).not.toContain(contact);
    const refused = await call(`/v1/lines/${LINES.doc.lineId}/contacts/${newContact()}`, 'DELETE', KEY, brokenUrl);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
  });

  it('400 naming the field for a bad contact; 401 for a wrong key or another line; 404 for an erasure of another line', async () => {
    const bad = await call(`/v1/lines/${LINES.doc.lineId}/contacts/12`, 'DELETE');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'invalid_contact', field: 'contact' });
    expect((await call(`/v1/lines/${LINES.doc.lineId}/contacts/${newContact()}`, 'DELETE', 'wrong-key')).status).toBe(401);
    expect((await call(`/v1/lines/${LINES.pywa.lineId}/contacts/${newContact()}`, 'DELETE')).status).toBe(401);
    const { view } = await goodService.request({ lineId: 'elsewhere', phoneNumberId: '999' }, newContact(), 'api');
    expect((await call(`/v1/lines/${LINES.doc.lineId}/erasures/${view.id}`)).status).toBe(404);
    expect((await call(`/v1/lines/${LINES.doc.lineId}/erasures/not-an-id`)).status).toBe(404);
  });
});
