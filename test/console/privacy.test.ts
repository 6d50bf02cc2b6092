import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import type { TurnPolicy } from '../../src/lines/line';
import { eventHandle } from '../../src/privacy/pseudonyms';
import { CONSOLE_TOKEN, startConsoleRig, type ConsoleRig } from '../support/console';
import { waitFor } from '../support/child';
import { LINES, lineFor, startRemoteStandIns, type RemoteStandIns } from '../support/worker';

/**
 * Personal data in the console, through the running gateway on the stand-ins (ingress, SQS, worker,
 * dynalite, s3rver, console): no response, SSE notice or URL carries a number or a wamid that was
 * posted, and a turn's media reach Bird signed when the turn is delivered, not when it was buffered.
 */
// Quiet long enough that the image's copy to S3 never cuts the burst in two.
const QUIET: TurnPolicy = { quietMs: 2000, maxWaitMs: 8000, maxMessages: 10 };
const ALONE = '15550009871';
const IN_TURN = '15550009872';

let remote: RemoteStandIns;
let c: ConsoleRig;

beforeAll(async () => {
  remote = await startRemoteStandIns();
  c = await startConsoleRig(remote, {
    aws: { fifo: true, queueName: 'console-privacy' },
    heartbeatMs: 300,
    // line-doc holds bursts as turns; line-third delivers each message alone.
    lines: [{ ...lineFor('doc', remote.bird.flowUrl()), turn: QUIET }, lineFor('third', remote.bird.flowUrl())],
  });
});
afterAll(async () => {
  await c?.stop();
  await remote?.stop();
});

type Line = (typeof LINES)[keyof typeof LINES];

function payload(line: Line, contact: string, items: { messages?: unknown[]; statuses?: unknown[] }): string {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: line.wabaId, changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: line.displayPhoneNumber, phone_number_id: line.phoneNumberId }, contacts: [{ profile: { name: 'Ada' }, wa_id: contact }], ...items } }] }],
  });
}
const text = (contact: string, wamid: string, body: string) => ({ from: contact, id: wamid, timestamp: '1749416383', type: 'text', text: { body } });
const image = (contact: string, wamid: string) => ({ from: contact, id: wamid, timestamp: '1749416383', type: 'image', image: { id: `1003${wamid.length}${Date.now() % 100_000}`, mime_type: 'image/jpeg', caption: 'the receipt' } });

/** Every body the console answered during a test, to search for what must not be in any. */
const answered: string[] = [];
async function api(path: string, init: RequestInit = {}): Promise<{ status: number; text: string }> {
  const res = await c.api(path, init);
  const text = await res.text();
  // The body only: a search URL holds what the operator typed (a wamid, a number) by design.
  answered.push(text);
  return { status: res.status, text };
}
const parse = <T>(answer: { text: string }) => JSON.parse(answer.text) as T;

/** The SSE stream of every line, raw: each `data:` line as it came. */
function openStream() {
  const raw: string[] = [];
  const req = http.get(`${c.console.url}api/stream`, { headers: { authorization: `Bearer ${CONSOLE_TOKEN}` } }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => raw.push(chunk));
  });
  req.on('error', () => undefined);
  return { raw, close: () => req.destroy() };
}

interface Row {
  handle: string;
  outcome: string;
  kind: string;
}

async function rowWhen(query: string, done: (row: Row) => boolean, what: string): Promise<Row> {
  let found: Row | undefined;
  await waitFor(
    async () => {
      found = parse<{ items: Row[] }>(await api(`events?${query}`)).items.find(done);
      return found !== undefined;
    },
    15_000,
    what,
  );
  return found!;
}

function secretsIn(haystack: string[], secrets: string[]): string[] {
  return secrets.filter((secret) => haystack.some((text) => text.includes(secret)));
}

describe('the console names events by handle and shows no number or wamid', () => {
  it('list, search, detail, DLQ and the live tail: none carries a posted wamid, number or event key, and the search by wamid or number finds the event', async () => {
    answered.length = 0;
    const stream = openStream();
    const third = LINES.third;
    const wamids = ['wamid.HBgLMTU1NTAwMDk4NzEVAgASGBQzQUFBQUFBQUFBQUFBQUFBQUFBQQA=', 'wamid.HBgLMTU1NTAwMDk4NzEVAgASGBQzQkJCQkJCQkJCQkJCQkJCQkJCQgA='];
    expect(await c.rig.post(payload(third, ALONE, { messages: [text(ALONE, wamids[0]!, 'hello'), image(ALONE, wamids[1]!)] }))).toBe(200);
    const statusWamid = 'wamid.HBgLMTU1NTAwMDk4NzEVAgARGBI5QzlDOUM5QzlDOUM5QzlDAA==';
    expect(await c.rig.post(payload(third, ALONE, { statuses: [{ id: statusWamid, status: 'read', timestamp: '1749416390', recipient_id: ALONE }] }))).toBe(200);
    const keys = [...wamids.map((w) => `msg#${third.phoneNumberId}#${w}`)];
    for (const key of keys) await rowWhen(`lineId=${third.lineId}`, (r) => r.handle === eventHandle(key) && r.outcome === 'delivered', 'the messages delivered');
    await rowWhen(`lineId=${third.lineId}&kind=status`, (r) => r.outcome === 'delivered', 'the status delivered');

    // The search box hashes what it is given: a wamid, or the whole number.
    for (const [wamid, key] of wamids.map((w, i) => [w, keys[i]!] as const)) {
      expect(parse<{ items: Row[] }>(await api(`events?wamid=${encodeURIComponent(wamid)}`)).items.map((r) => r.handle)).toEqual([eventHandle(key)]);
    }
    const byNumber = parse<{ items: Row[] }>(await api(`events?contact=${encodeURIComponent(`+${ALONE}`)}&limit=50`)).items.map((r) => r.handle);
    expect(byNumber).toEqual(expect.arrayContaining(keys.map(eventHandle)));
    // Each detail, by the handle a list gave, and its media through the console.
    const all = parse<{ items: Row[] }>(await api(`events?lineId=${third.lineId}&limit=50`)).items;
    for (const row of all) {
      const detail = await api(`events/${encodeURIComponent(row.handle)}`);
      expect(detail.status).toBe(200);
      expect(parse<{ handle: string }>(detail).handle).toBe(row.handle);
    }
    await api('dlq?queue=inbound');
    await api('lines');
    await sleep(500);
    stream.close();

    const sse = stream.raw.join('');
    expect(sse).toContain(eventHandle(keys[0]!));
    const forbidden = [...wamids, statusWamid, ALONE, 'msg#', 'status#wamid', 'X-Amz-Signature'];
    expect(secretsIn([...answered, sse], forbidden)).toEqual([]);
    // Wamids also leave no readable trace of the sender's number inside them (their base64 tail is fine only if it is not there at all).
    expect(secretsIn([...answered, sse], wamids.map((w) => w.slice(6, 30)))).toEqual([]);
  });
});

describe('a turn with an image', () => {
  it('its console detail holds no whole number and no signature; redriven later, it reaches Bird with a URL signed at the redrive', async () => {
    answered.length = 0;
    const doc = LINES.doc;
    const burst = ['wamid.turn-privacy-1', 'wamid.turn-privacy-2', 'wamid.turn-privacy-3'];
    // The flow refuses the turn once: it is parked, to be redriven after its media's first URL would have been signed.
    remote.bird.failNext(1, { status: 400 });
    expect(await c.rig.post(payload(doc, IN_TURN, { messages: [text(IN_TURN, burst[0]!, 'my order'), image(IN_TURN, burst[1]!), text(IN_TURN, burst[2]!, 'is late')] }))).toBe(200);
    const parked = await rowWhen(`lineId=${doc.lineId}&outcome=parked`, (r) => r.kind === 'turn', 'the turn parked');

    const detail = await api(`events/${encodeURIComponent(parked.handle)}`);
    expect(detail.status).toBe(200);
    const shown = parse<{ event: { turn: { messages: { message: { text?: string; media?: Record<string, unknown> } }[] } } }>(detail);
    expect(shown.event.turn.messages.map((m) => m.message.text)).toEqual(['my order', 'the receipt', 'is late']);
    expect(shown.event.turn.messages[1]!.message.media).toMatchObject({ kind: 'image', mimeType: 'image/jpeg' });
    expect(secretsIn([detail.text], [IN_TURN, ...burst, 'X-Amz-Signature', 'X-Amz-Credential', 'http'])).toEqual([]);

    // Past the moment the buffered image was stored and would have been signed, redrive the turn from the console.
    await sleep(1500);
    const dlq = parse<{ items: { id: string; handle: string | null }[] }>(await api('dlq?queue=inbound'));
    const entry = dlq.items.find((i) => i.handle === parked.handle);
    expect(entry).toBeDefined();
    const redrivenAt = Date.now();
    expect((await api(`dlq/${encodeURIComponent(entry!.id)}/redrive?queue=inbound`, { method: 'POST' })).status).toBe(202);
    await waitFor(async () => remote.bird.received().some((call) => call.body.kind === 'turn'), 15_000, 'the redriven turn at Bird');

    const turn = remote.bird.received().find((call) => call.body.kind === 'turn')!.body as { turn: { messages: { message: { media?: { url: string; s3Key: string } } }[] } };
    const media = turn.turn.messages[1]!.message.media!;
    const url = new URL(media.url);
    const signedAt = Date.parse(url.searchParams.get('X-Amz-Date')!.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
    // Signed when the turn was delivered (X-Amz-Date has whole seconds), not when the image was buffered.
    expect(signedAt).toBeGreaterThanOrEqual(Math.floor(redrivenAt / 1000) * 1000);
    const fetched = await fetch(media.url);
    expect(fetched.status).toBe(200);
    expect((await fetched.arrayBuffer()).byteLength).toBeGreaterThan(0);
    expect(media.s3Key).toMatch(/^media\//);

    // The stored turn's size: its projection, against what was stored before (the turn event whole but its top-level raw).
    const { Item } = await c.rig.aws.clients.documents.send(new GetCommand({ TableName: c.rig.config.dynamodb.dedupeTable, Key: { pk: parked.handle } }));
    const after = Buffer.byteLength(String(Item!.event));
    const { raw: _raw, reference: _reference, ...whole } = turn as unknown as Record<string, unknown>;
    const before = Buffer.byteLength(JSON.stringify(whole));
    console.log(`[stored turn on the stand-ins] 3 messages with an image: ${before} bytes before, ${after} bytes after`);
    expect(after).toBeLessThan(before);
  });
});
