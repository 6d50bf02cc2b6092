import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { ArchiveObjects } from '../../src/archive/archive-objects';
import { archiveKey, toRecord } from '../../src/archive/archive-record';
import { archiveObjectsHolding } from '../../src/archive/archive-erasure';
import { GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { ensureResources } from '../../src/aws/resources';
import { sign } from '../../src/ingress/signature';
import { startBirdStandIn, echoResponder, type BirdStandIn } from '../../src/local/bird-standin';
import { startGraphStandIn, type GraphStandIn } from '../../src/local/graph-standin';
import { contactMediaPrefix } from '../../src/media/media-object';
import { DynamoOutboundStore } from '../../src/outbound/dynamo-outbound-store';
import { contactKey } from '../../src/outbound/record';
import { contactDigest, eventHandle } from '../../src/privacy/pseudonyms';
import { turnBufferKey } from '../../src/worker/turns/turn-store';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { freePort, productionLikeEnv, startMain, waitFor, type Child } from '../support/child';
import { APP_SECRET, VERIFY_TOKEN, startIngressHarness, type IngressHarness } from '../support/ingress';
import { capturedLogger } from '../support/logs';
import { GRAPH_TOKEN, LINES, lineFor, outboundEnv } from '../support/worker';

/**
 * Erasure end to end, through `node dist/main.js all` on the stand-ins: a contact who sent a text,
 * an image and a voice note, got the echo AI's replies (sent, delivered, read), and has a turn
 * pending is erased with DELETE; the process is SIGKILLed while the erasure runs, restarted, and the
 * erasure completes with the right counts. Then nothing of the contact is left in clear, and another
 * contact's data is untouched.
 */
const KEY = 'erasure-e2e-outbound-key-0123';
const CONSOLE_TOKEN = 'erasure-e2e-console-token-0123';
const ERASED = '15550004001';
const KEPT = '15550004002';
/** Extra media of the erased contact, so the media step runs long enough to be killed mid-way. */
const EXTRA_MEDIA = 300;
const LINE = LINES.doc;

let aws: AwsHarness;
let bird: BirdStandIn;
let graph: GraphStandIn;
let harness: IngressHarness;
const children: Child[] = [];
let ports: { http: number; console: number };

beforeAll(async () => {
  aws = await startAwsHarness({ queueName: 'erasure-e2e' });
  await ensureResources(aws.clients, { ...aws.names, erasuresTable: 'erasures' });
  bird = await startBirdStandIn({ logger: capturedLogger('warn').logger });
  bird.respondWith(echoResponder);
  graph = await startGraphStandIn({ token: GRAPH_TOKEN });
  harness = await startIngressHarness(aws, { outbound: true });
  await harness.putLines([{ ...lineFor('doc', bird.flowUrl()), outboundKeys: [KEY] }]);
  ports = { http: await freePort(), console: await freePort() };
  graph.messages.setWebhookTarget(`http://127.0.0.1:${ports.http}/webhooks/whatsapp`, APP_SECRET);
}, 60_000);

afterAll(async () => {
  for (const child of children) if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
  await harness?.stop();
  await graph?.stop();
  await bird?.stop();
  await aws?.stop();
});

function startAll(): Child {
  const child = startMain(
    'all',
    productionLikeEnv(aws, {
      ...outboundEnv(aws),
      LOG_LEVEL: 'info',
      PORT: String(ports.http),
      CONSOLE_PORT: String(ports.console),
      CONSOLE_TOKEN,
      WHATSAPP_APP_SECRETS: APP_SECRET,
      WHATSAPP_VERIFY_TOKEN: VERIFY_TOKEN,
      DYNAMODB_ERASURES_TABLE: 'erasures',
      SQS_TURN_QUEUE_URL: aws.standIns.turnQueueUrl,
      GRAPH_API_BASE_URL: graph.baseUrl,
      MEDIA_ALLOWED_HOSTS: graph.host,
      LINE_CACHE_TTL_MS: '200',
      SQS_WAIT_TIME_SECONDS: '0',
      SQS_VISIBILITY_TIMEOUT_SECONDS: '5',
      SHUTDOWN_TIMEOUT_MS: '3000',
    }),
  );
  children.push(child);
  return child;
}

async function waitUp(child: Child): Promise<void> {
  await waitFor(async () => (await fetch(`${base()}/healthz`)).ok || child.process.exitCode !== null, 30_000, 'the process up');
  if (child.process.exitCode !== null) throw new Error(`the process exited:\n${child.output().slice(-3000)}`);
}

const base = () => `http://127.0.0.1:${ports.http}`;

function payload(from: string, message: Record<string, unknown>): string {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: LINE.wabaId,
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: LINE.displayPhoneNumber, phone_number_id: LINE.phoneNumberId },
              contacts: [{ profile: { name: 'Someone' }, wa_id: from }],
              messages: [{ from, timestamp: String(Math.floor(Date.now() / 1000)), ...message }],
            },
          },
        ],
      },
    ],
  });
}

async function post(body: string): Promise<void> {
  const res = await fetch(`${base()}/webhooks/whatsapp`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(APP_SECRET, body) }, body });
  expect(res.status).toBe(200);
}

/** A text, an image and a voice note from `from`; returns each payload and wamid. */
async function converse(from: string): Promise<{ payloads: string[]; wamids: string[] }> {
  const tag = `${from}-${Date.now()}`;
  graph.addMedia(`img-${tag}`, { body: Buffer.from(`image of ${tag}`), mimeType: 'image/jpeg' });
  graph.addMedia(`voice-${tag}`, { body: Buffer.from(`voice of ${tag}`), mimeType: 'audio/ogg' });
  const messages = [
    { id: `wamid.TXT${tag}`, type: 'text', text: { body: `my number is ${from}` } },
    { id: `wamid.IMG${tag}`, type: 'image', image: { id: `img-${tag}`, mime_type: 'image/jpeg', caption: 'a photo' } },
    { id: `wamid.VOC${tag}`, type: 'audio', audio: { id: `voice-${tag}`, mime_type: 'audio/ogg; codecs=opus', voice: true } },
  ];
  const payloads = messages.map((m) => payload(from, m));
  for (const body of payloads) await post(body);
  return { payloads, wamids: messages.map((m) => m.id) };
}

const outbound = () => new DynamoOutboundStore({ documents: aws.clients.documents, tableName: aws.names.outboundTable, retentionDays: 30 });

async function repliesOf(contact: string) {
  const out = await aws.clients.documents.send(new ScanCommand({ TableName: aws.names.outboundTable }));
  return (out.Items ?? []).filter((item) => item.contactKey === contactKey(LINE.lineId, contact));
}

async function scanAll(): Promise<Record<string, unknown[]>> {
  const tables: Record<string, unknown[]> = {};
  for (const table of [aws.names.linesTable, aws.names.dedupeTable, aws.names.outboundTable, 'erasures']) {
    tables[table] = (await aws.clients.documents.send(new ScanCommand({ TableName: table }))).Items ?? [];
  }
  return tables;
}

/** Every attribute (table, item pk, attribute) whose value contains one of `needles`. */
function leaks(tables: Record<string, unknown[]>, needles: string[]): string[] {
  const found: string[] = [];
  for (const [table, items] of Object.entries(tables)) {
    for (const item of items as Record<string, unknown>[]) {
      for (const [name, value] of Object.entries(item)) {
        const text = typeof value === 'string' ? value : JSON.stringify(value);
        for (const needle of needles) if (text?.includes(needle)) found.push(`${table}.${name} (${needle})`);
      }
    }
  }
  return [...new Set(found)];
}

async function mediaUnder(prefix: string): Promise<number> {
  const out = await aws.clients.s3.send(new ListObjectsV2Command({ Bucket: aws.names.bucket, Prefix: prefix }));
  return (out.Contents ?? []).length;
}

/** The dedupe record of a message: keyed by its event key's handle (src/dedupe/dedupe-table.ts storedKey). */
async function dedupeRecord(wamid: string): Promise<Record<string, unknown> | undefined> {
  const pk = eventHandle(`msg#${LINE.phoneNumberId}#${wamid}`);
  const out = await aws.clients.documents.send(new GetCommand({ TableName: aws.names.dedupeTable, Key: { pk }, ConsistentRead: true }));
  return out.Item;
}

const api = (path: string, init: RequestInit = {}) => fetch(`${base()}${path}`, { ...init, headers: { authorization: `Bearer ${KEY}`, ...init.headers } });
const consoleApi = async (path: string) => (await fetch(`http://127.0.0.1:${ports.console}/console/api/${path}`, { headers: { authorization: `Bearer ${CONSOLE_TOKEN}` } })).json() as Promise<{ items: unknown[] }>;

describe('erasure through the running process', () => {
  it('erases a contact’s media, journal, replies and pending turn, survives SIGKILL mid-way, and leaves the others alone', async () => {
    let child = startAll();
    await waitUp(child);

    // Two people write; each message gets the echo AI's reply, which goes out and comes back read.
    const erased = await converse(ERASED);
    const kept = await converse(KEPT);
    await waitFor(async () => (await repliesOf(ERASED)).length === 3 && (await repliesOf(KEPT)).length === 3, 30_000, 'the replies recorded');
    const store = outbound();
    await waitFor(async () => {
      const all = [...(await repliesOf(ERASED)), ...(await repliesOf(KEPT))];
      return (await Promise.all(all.map((r) => store.get(String(r.pk))))).every((r) => r?.status === 'read');
    }, 30_000, 'every reply read');
    const replyWamids = graph.messages.sends().filter((s) => s.to === ERASED && s.wamid).map((s) => s.wamid!);
    expect(replyWamids).toHaveLength(3);

    // Turns on: the contact's next message waits in its turn buffer.
    await harness.putLines([{ ...lineFor('doc', bird.flowUrl()), outboundKeys: [KEY], turn: { quietMs: 120_000, maxWaitMs: 600_000, maxMessages: 10 } }]);
    await new Promise((r) => setTimeout(r, 400));
    const pendingWamid = `wamid.PENDING${Date.now()}`;
    await post(payload(ERASED, { id: pendingWamid, type: 'text', text: { body: 'are you there?' } }));
    const turnItem = async () => (await aws.clients.documents.send(new GetCommand({ TableName: aws.names.dedupeTable, Key: { pk: turnBufferKey(LINE.lineId, ERASED) }, ConsistentRead: true }))).Item;
    await waitFor(async () => Number((await turnItem())?.count ?? 0) === 1, 15_000, 'the turn pending');

    // More media of the erased contact, so the erasure is still running when the process is killed.
    const prefix = contactMediaPrefix(LINE.lineId, ERASED);
    await Promise.all(
      Array.from({ length: EXTRA_MEDIA }, (_, i) =>
        aws.clients.s3.send(new PutObjectCommand({ Bucket: aws.names.bucket, Key: `${prefix}2026/01/01/extra/${i}.jpg`, Body: `extra ${i}` })),
      ),
    );
    const mediaBefore = await mediaUnder(prefix);
    expect(mediaBefore).toBe(EXTRA_MEDIA + 2);

    // The signed originals in the archive (src/archive): one object with both contacts' payloads, one
    // with the erased contact's only. The first is rewritten without its payloads, the second deleted.
    const archive = new ArchiveObjects({ s3: aws.clients.s3, bucket: aws.names.bucket });
    const archived = (from: string, i: number) => {
      const body = Buffer.from(erased.payloads[0]!.replace(new RegExp(ERASED, 'g'), from).replace(erased.wamids[0]!, `wamid.ARCHIVED${i}`));
      return toRecord({ receivedAt: new Date(Date.now() - 3_600_000).toISOString(), requestId: `archived-${i}`, path: '/webhooks/whatsapp', signature: 'sha256=00', body, contacts: [from] });
    };
    const objectOf = (records: ReturnType<typeof archived>[]) => records.map((r) => `${JSON.stringify(r)}\n`).join('');
    const mixedKey = archiveKey(new Date(Date.now() - 3_600_000).toISOString(), 'e2e', 1);
    const erasedOnlyKey = archiveKey(new Date(Date.now() - 3_600_000).toISOString(), 'e2e', 2);
    await archive.put(mixedKey, objectOf([archived(ERASED, 1), archived(KEPT, 2)]), 2, [ERASED, KEPT]);
    await archive.put(erasedOnlyKey, objectOf([archived(ERASED, 3)]), 1, [ERASED]);
    // The running process archives what it takes too (within ARCHIVE_FLUSH_MS of each 200).
    await new Promise((r) => setTimeout(r, 1500));
    const holding = () => archiveObjectsHolding(archive, { phoneNumberId: LINE.phoneNumberId, contactDigest: contactDigest(ERASED) });
    const archiveBefore = (await holding()).length;
    expect(archiveBefore).toBeGreaterThanOrEqual(3);

    // Bad input is refused, naming the field.
    const bad = await api(`/v1/lines/${LINE.lineId}/contacts/no`, { method: 'DELETE' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ field: 'contact' });
    expect((await fetch(`${base()}/v1/lines/${LINE.lineId}/contacts/${ERASED}`, { method: 'DELETE' })).status).toBe(401);

    const accepted = await api(`/v1/lines/${LINE.lineId}/contacts/${ERASED}`, { method: 'DELETE' });
    expect(accepted.status).toBe(202);
    const { id, status } = (await accepted.json()) as { id: string; status: string };
    expect({ id, status }).toEqual({ id: expect.stringMatching(/^er_/), status: 'queued' });
    // The same request while it is pending: the same erasure.
    expect(await (await api(`/v1/lines/${LINE.lineId}/contacts/%2B${ERASED}`, { method: 'DELETE' })).json()).toEqual({ id, status: expect.any(String) });

    // SIGKILL once the media step has checkpointed a batch, while it is not done.
    const record = async () => (await aws.clients.documents.send(new GetCommand({ TableName: 'erasures', Key: { pk: id }, ConsistentRead: true }))).Item;
    await waitFor(async () => Number((await record())?.counts?.media ?? 0) > 0, 20_000, 'the erasure under way');
    child.process.kill('SIGKILL');
    await child.exited;
    const atKill = (await record())!;
    expect(atKill.status).not.toBe('done');
    const removedAtKill = Number(atKill.counts.media ?? 0);
    expect(removedAtKill).toBeLessThan(mediaBefore);

    child = startAll();
    await waitUp(child);
    let view: { status: string; removed?: Record<string, number> } = { status: '' };
    await waitFor(async () => {
      view = (await (await api(`/v1/lines/${LINE.lineId}/erasures/${id}`)).json()) as typeof view;
      return view.status === 'done';
    }, 40_000, 'the erasure done after the restart').catch((e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(view)}\n${child.output().slice(-3000)}`);
    });
    // text, image, voice and the pending message, each with its statuses' records: 3 replies × 3 statuses.
    expect(view.removed).toEqual({ media: mediaBefore, journal: 4 + 9, outbound: 3, turns: 1, contact_state: 1, archive: archiveBefore });
    console.log(`erasure e2e counts: ${JSON.stringify(view.removed)} (killed after ${removedAtKill} media objects)`);

    // S3 holds none of its media; its turn buffer and replies are gone; the console finds nothing.
    expect(await mediaUnder(prefix)).toBe(0);
    // The archive keeps the other contact's payload only.
    expect(await holding()).toEqual([]);
    expect((await archive.read(mixedKey)).map((r) => r?.requestId)).toEqual(['archived-2']);
    expect(await mediaUnder(erasedOnlyKey)).toBe(0);
    expect(await turnItem()).toBeUndefined();
    expect(await repliesOf(ERASED)).toEqual([]);
    expect((await consoleApi(`events?contact=${ERASED}`)).items).toEqual([]);
    expect((await consoleApi(`events?wamid=${encodeURIComponent(erased.wamids[0]!)}`)).items).toEqual([]);
    expect((await consoleApi(`outbound?lineId=${LINE.lineId}&to=${ERASED}`)).items).toEqual([]);

    // A Meta retry of an old payload is a duplicate: Bird does not get it again.
    const atBird = () => bird.received().filter((r) => JSON.stringify(r).includes(erased.wamids[0]!)).length;
    const before = atBird();
    expect(before).toBeGreaterThanOrEqual(1);
    await post(erased.payloads[0]!);
    await waitFor(async () => Number((await dedupeRecord(erased.wamids[0]!))?.duplicates ?? 0) >= 1, 15_000, 'the retry seen as a duplicate');
    expect(atBird()).toBe(before);

    // The other contact is untouched.
    expect(await mediaUnder(contactMediaPrefix(LINE.lineId, KEPT))).toBe(2);
    expect(await repliesOf(KEPT)).toHaveLength(3);
    expect((await consoleApi(`events?contact=${KEPT}&lineId=${LINE.lineId}`)).items.length).toBeGreaterThanOrEqual(3);
    expect(leaks(await scanAll(), kept.wamids).length).toBeGreaterThan(0);

    // The audit trail: logged with the digest, never the number.
    expect(child.output()).toContain(`"contactDigest":"${contactDigest(ERASED)}"`);
    expect(child.output()).not.toContain(ERASED);
    child.process.kill('SIGTERM');
    await child.exited;

    // A Scan of every table finds neither the number nor any of its wamids in clear (after the retry too).
    // The dedupe records are keyed by the event key's handle, and the journal holds wamid and contact digests only.
    expect(leaks(await scanAll(), [ERASED, ...erased.wamids, pendingWamid, ...replyWamids])).toEqual([]);
  }, 180_000);
});
