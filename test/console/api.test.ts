import http from 'node:http';
import { startConsole } from '../../src/console/server';
import { InboundJournal } from '../../src/journal/inbound-journal';
import { OutboundJournal } from '../../src/journal/outbound-journal';
import { JournalBus } from '../../src/journal/journal-bus';
import { DynamoLineStore } from '../../src/lines/store';
import { eventHandle } from '../../src/privacy/pseudonyms';
import { CONSOLE_TOKEN, OUTBOUND_KEY, startConsoleRig, type ConsoleRig } from '../support/console';
import { waitFor } from '../support/child';
import { LINES, mediaMessage, startRemoteStandIns, textMessage, webhookPayload, type RemoteStandIns } from '../support/worker';

/**
 * The console API over the real stand-ins: a webhook goes through ingress, SQS and the worker, and
 * its journey is read back from the dedupe records through the console's own port.
 */
let remote: RemoteStandIns;
let c: ConsoleRig;
const SENDER = '16505551234';

beforeAll(async () => {
  remote = await startRemoteStandIns();
  // One Bird attempt per delivery and a 1 s retry delay: a 503 becomes a `retried` step at once.
  c = await startConsoleRig(remote, { heartbeatMs: 300, outbound: true, custom: { bird: { retry: { maxAttempts: 1 } }, retryBaseSeconds: 1, retryMaxSeconds: 1 } });
});
afterAll(async () => {
  await c?.stop();
  await remote?.stop();
});
afterEach(() => {
  remote.reset();
  remote.graph.messages.reset();
});

interface Detail {
  handle: string;
  lineId: string;
  outcome: string;
  duplicates: number;
  contact?: string;
  reason?: string;
  journey: { at: string; step: string; detail?: Record<string, unknown> }[];
  event?: { message?: { text?: string }; contact?: { waId?: string } };
  media?: { href: string; type: string; size: number };
}

const json = async <T>(res: Response): Promise<T> => (await res.json()) as T;
const steps = (d: Detail) => d.journey.map((s) => s.step);
const eventKeyOf = (wamid: string) => `msg#${LINES.doc.phoneNumberId}#${wamid}`;
/** What the console names an event by: the handle of its key, never the key (it carries the wamid). */
const handleOf = (wamid: string) => eventHandle(eventKeyOf(wamid));

async function post(wamid: string, message = textMessage(wamid)): Promise<void> {
  expect(await c.rig.post(webhookPayload([{ changes: [{ phoneNumberId: LINES.doc.phoneNumberId, messages: [message] }] }]))).toBe(200);
}

async function detailWhen(key: string, done: (d: Detail) => boolean, what: string): Promise<Detail> {
  let last: Detail | undefined;
  await waitFor(
    async () => {
      const res = await c.api(`events/${encodeURIComponent(key)}`);
      if (res.status !== 200) return false;
      last = await json<Detail>(res);
      return done(last);
    },
    10_000,
    what,
  );
  return last!;
}

/** A reply through the send API of line-doc; its outbound id. */
async function reply(text: string, key: string, to = SENDER): Promise<string> {
  const res = await fetch(`${c.rig.ingress.url}/v1/lines/${LINES.doc.lineId}/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${OUTBOUND_KEY}`, 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify({ to, type: 'text', text: { body: text } }),
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

/** Opens the SSE stream and collects `event: journal` data and comments until closed. */
function openStream(path: string, headers: Record<string, string>, base = c.console.url) {
  const events: { handle: string; lineId: string; step: string; at: string }[] = [];
  let comments = 0;
  let status = 0;
  let contentType = '';
  const url = new URL(`${base}api/${path}`);
  const req = http.get(url, { headers }, (res) => {
    status = res.statusCode ?? 0;
    contentType = String(res.headers['content-type']);
    let buffer = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (block.split('\n').some((l) => l.startsWith(': heartbeat'))) comments++;
        const data = block.split('\n').find((l) => l.startsWith('data: '));
        if (block.includes('event: journal') && data) events.push(JSON.parse(data.slice(6)));
      }
    });
  });
  req.on('error', () => undefined);
  return { events, comments: () => comments, status: () => status, contentType: () => contentType, close: () => req.destroy() };
}

describe('access', () => {
  it('answers 401 without credentials or with a wrong bearer, and never on the webhook port', async () => {
    expect((await c.api('lines', { bearer: false })).status).toBe(401);
    const wrong = await c.api('lines', { headers: { authorization: 'Bearer not-the-token-at-all' } });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ error: 'unauthorized' });
    expect((await c.api('lines')).status).toBe(200);
    const onIngress = await fetch(`${c.rig.ingress.url}/console/api/lines`, { headers: { authorization: `Bearer ${CONSOLE_TOKEN}` } });
    expect(onIngress.status).toBe(404);
  });

  it('logs in into an HttpOnly SameSite=Strict cookie; a state change with it needs the CSRF token (403 without)', async () => {
    expect((await c.api('session', { method: 'POST', bearer: false, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'wrong' }) })).status).toBe(401);
    const login = await c.api('session', { method: 'POST', bearer: false, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: CONSOLE_TOKEN }) });
    expect(login.status).toBe(200);
    const setCookie = login.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^wa_console_session=[^;]+; Path=\/console; HttpOnly; SameSite=Strict; Max-Age=3600$/);
    expect(setCookie).not.toContain(CONSOLE_TOKEN);
    const { csrf } = await json<{ csrf: string }>(login);
    const cookie = setCookie.split(';')[0]!;

    expect((await c.api('lines', { bearer: false, headers: { cookie } })).status).toBe(200);
    expect(await json(await c.api('session', { bearer: false, headers: { cookie } }))).toMatchObject({ via: 'session', csrf });
    const noCsrf = await c.api('dlq/redrive?queue=inbound', { method: 'POST', bearer: false, headers: { cookie } });
    expect(noCsrf.status).toBe(403);
    expect(await noCsrf.json()).toMatchObject({ error: 'csrf_required', field: 'x-csrf-token' });
    expect((await c.api('dlq/purge', { method: 'POST', bearer: false, headers: { cookie, 'x-csrf-token': `${csrf}x` } })).status).toBe(403);
    expect((await c.api('dlq/redrive?queue=inbound&reason=none_such', { method: 'POST', bearer: false, headers: { cookie, 'x-csrf-token': csrf } })).status).toBe(202);
    // The bearer needs no CSRF token; a forged cookie is no credential.
    expect((await c.api('dlq/redrive?queue=inbound&reason=none_such', { method: 'POST' })).status).toBe(202);
    expect((await c.api('lines', { bearer: false, headers: { cookie: `${cookie.slice(0, -3)}abc` } })).status).toBe(401);
  });

  it('answers every bad credential 401 in JSON naming the problem, never a 500 or a stack (a malformed cookie included)', async () => {
    const session = (cookie: string) => c.api('lines', { bearer: false, headers: { cookie } });
    const cases: Array<[string, Promise<Response>, string]> = [
      ['a broken %-escape in the cookie', session('wa_console_session=%E0%A4'), 'malformed_session'],
      ['a lone %', session('other=%; wa_console_session=%'), 'malformed_session'],
      ['a cookie of another shape', session('wa_console_session=v1.1.2'), 'malformed_session'],
      ['a forged session', session('wa_console_session=v1.9999999999.nonce.bm90LWEtbWFj'), 'invalid_session'],
      ['a wrong bearer', c.api('lines', { headers: { authorization: 'Bearer nope' } }), 'wrong_token'],
      ['nothing', c.api('lines', { bearer: false }), 'no_credential'],
    ];
    for (const [name, call, problem] of cases) {
      const res = await call;
      const text = await res.text();
      expect([name, res.status, res.headers.get('content-type')?.split(';')[0], JSON.parse(text)]).toEqual([
        name,
        401,
        'application/json',
        { error: 'unauthorized', problem, message: expect.any(String) },
      ]);
      expect(text).not.toMatch(/URIError|at .*\.js:\d+/);
    }
    // The page's session check on load, with the bad cookie: the same 401, so the page shows the login.
    expect((await c.api('session', { bearer: false, headers: { cookie: 'wa_console_session=%E0%A4' } })).status).toBe(401);
    // A login whose body is not JSON is the client's error too: 400 in JSON.
    const notJson = await c.api('session', { method: 'POST', bearer: false, headers: { 'content-type': 'application/json' }, body: '{"token": ' });
    expect([notJson.status, await notJson.json()]).toEqual([400, expect.objectContaining({ error: 'invalid_request', field: 'token' })]);
  });

  it('serves the page without credentials, with a strict CSP and no token in it', async () => {
    const page = await fetch(c.console.url);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toContain('<script type="module" src="app.js">');
    expect(html).not.toContain(CONSOLE_TOKEN);
  });

  it('names the field of a bad query with a 400', async () => {
    const res = await c.api('events?limit=5000');
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_request', field: 'limit' });
    expect(await json(await c.api('events?lineId=line-doc&cursor=bogus'))).toMatchObject({ field: 'cursor' });
  });
});

describe('journeys', () => {
  it('a delivered event: received → claimed → delivered → completed, streamed over SSE within 2 s of the POST', async () => {
    const stream = openStream(`stream?lineId=${LINES.doc.lineId}`, { authorization: `Bearer ${CONSOLE_TOKEN}` });
    await waitFor(async () => stream.status() === 200, 2000, 'the stream to open');
    expect(stream.contentType()).toMatch(/^text\/event-stream/);
    const wamid = 'wamid.console-delivered-0001';
    const posted = Date.now();
    await post(wamid, textMessage(wamid, 'where is my order?'));
    await waitFor(async () => stream.events.some((e) => e.handle === handleOf(wamid)), 2000, 'a journal step on the stream within 2 s');
    expect(Date.now() - posted).toBeLessThan(2000);
    const d = await detailWhen(handleOf(wamid), (x) => x.outcome === 'delivered', 'the event delivered');
    expect(steps(d)).toEqual(['received', 'claimed', 'delivered', 'completed']);
    expect(d.journey[0]!.detail).toMatchObject({ line: LINES.doc.lineId, bytes: expect.any(Number), requestId: expect.any(String) });
    expect(d.journey[2]!.detail).toMatchObject({ transport: 'flow', status: 202, ms: expect.any(Number) });
    // The detail has the text; the contact is masked there as in the lists.
    expect(d.event?.message?.text).toBe('where is my order?');
    expect(JSON.stringify(d)).not.toContain(SENDER);
    await waitFor(async () => stream.events.filter((e) => e.handle === handleOf(wamid)).map((e) => e.step).includes('completed'), 2000, 'completed on the stream');
    expect(stream.events.filter((e) => e.handle === handleOf(wamid)).map((e) => e.step)).toEqual(['received', 'claimed', 'delivered', 'completed']);
    await waitFor(async () => stream.comments() > 0, 2000, 'a heartbeat comment');
    stream.close();
  });

  it('a console without a worker in its process (the ingress role) tails the line+time index instead', async () => {
    const { documents } = c.rig.aws.clients;
    const apart = await startConsole({
      port: 0,
      host: '127.0.0.1',
      token: CONSOLE_TOKEN,
      sessionHours: 1,
      journal: new InboundJournal({ documents, tableName: c.rig.config.dynamodb.dedupeTable }),
      outbound: new OutboundJournal({ documents, tableName: c.rig.aws.names.outboundTable }),
      lines: new DynamoLineStore({ documents, tableName: c.rig.config.dynamodb.linesTable }),
      queues: {},
      // Nothing publishes on this bus but the console's own index tail.
      bus: new JournalBus(),
      localFeed: false,
      tailIntervalMs: 250,
      logger: c.logs.logger,
    });
    try {
      const stream = openStream(`stream?lineId=${LINES.doc.lineId}`, { authorization: `Bearer ${CONSOLE_TOKEN}` }, apart.url);
      await waitFor(async () => stream.status() === 200, 2000, 'the stream to open');
      const wamid = 'wamid.console-tail-apart-0009';
      await post(wamid);
      await waitFor(async () => stream.events.filter((e) => e.handle === handleOf(wamid)).some((e) => e.step === 'completed'), 5000, 'completed through the index tail');
      const seen = stream.events.filter((e) => e.handle === handleOf(wamid)).map((e) => e.step);
      expect(new Set(seen).size).toBe(seen.length);
      expect(seen).toEqual(expect.arrayContaining(['claimed', 'delivered', 'completed']));
      // Replies too, from the outbound records' line index.
      const id = await reply('tailed apart', 'console-reply-apart');
      await waitFor(async () => stream.events.filter((e) => e.handle === id).some((e) => e.step === 'read'), 10_000, 'the reply read, through the index tail');
      const replySteps = stream.events.filter((e) => e.handle === id).map((e) => e.step);
      expect(new Set(replySteps).size).toBe(replySteps.length);
      stream.close();
    } finally {
      await apart.close();
    }
  });

  it('finds events by wamid and by contact through the indexes; lists mask the contact and carry no text', async () => {
    const wamid = 'wamid.console-lookup-0002';
    await post(wamid, textMessage(wamid, 'secret plans'));
    await detailWhen(handleOf(wamid), (x) => x.outcome === 'delivered', 'delivered');
    const byWamid = await json<{ items: { handle: string; contact: string }[] }>(await c.api(`events?wamid=${encodeURIComponent(wamid)}`));
    expect(byWamid.items.map((i) => i.handle)).toEqual([handleOf(wamid)]);
    const byContact = await json<{ items: { handle: string; contact: string }[] }>(await c.api(`events?contact=${SENDER}&limit=200`));
    expect(byContact.items.map((i) => i.handle)).toContain(handleOf(wamid));
    expect(byContact.items.every((i) => i.contact === '…1234')).toBe(true);
    const text = JSON.stringify(byContact);
    expect(text).not.toContain(SENDER);
    expect(text).not.toContain('secret plans');
    expect((await json<{ items: unknown[] }>(await c.api('events?contact=15550000000'))).items).toEqual([]);
    // Filters: kind, and since (by the index's time key).
    const messages = await json<{ items: { kind: string }[] }>(await c.api(`events?lineId=${LINES.doc.lineId}&kind=message`));
    expect(messages.items.length).toBeGreaterThan(0);
    expect(messages.items.every((i) => i.kind === 'message')).toBe(true);
    const statuses = await json<{ items: { kind: string }[] }>(await c.api(`events?lineId=${LINES.doc.lineId}&kind=status`));
    expect(statuses.items.every((i) => i.kind === 'status')).toBe(true);
    expect((await json<{ items: unknown[] }>(await c.api(`events?lineId=${LINES.doc.lineId}&since=${new Date(Date.now() + 60_000).toISOString()}`))).items).toEqual([]);
    expect((await c.api('events?since=yesterday')).status).toBe(400);
  });

  it('a duplicate: the same message again adds a duplicate step and count, and Bird hears it once', async () => {
    const wamid = 'wamid.console-duplicate-0003';
    await post(wamid);
    await detailWhen(handleOf(wamid), (x) => x.outcome === 'delivered', 'delivered');
    await post(wamid);
    const d = await detailWhen(handleOf(wamid), (x) => x.duplicates === 1, 'the duplicate recorded');
    expect(steps(d)).toEqual(['received', 'claimed', 'delivered', 'completed', 'duplicate']);
    expect(remote.bird.received().filter((call) => call.idempotencyKey === eventKeyOf(wamid))).toHaveLength(1);
    const dupes = await json<{ items: { handle: string }[] }>(await c.api(`events?lineId=${LINES.doc.lineId}&outcome=duplicate`));
    expect(dupes.items.map((i) => i.handle)).toContain(handleOf(wamid));
  });

  it('a retried event: retried (reason) when Bird is unavailable, then claimed again and delivered', async () => {
    const wamid = 'wamid.console-retried-0006';
    remote.bird.failNext(1, { status: 503 });
    await post(wamid);
    const d = await detailWhen(handleOf(wamid), (x) => x.outcome === 'delivered', 'delivered after the retry');
    expect(steps(d)).toEqual(['received', 'claimed', 'retried', 'claimed', 'delivered', 'completed']);
    expect(d.journey[2]!.detail).toEqual({ reason: 'bird_unavailable' });
    expect(Number(d.journey[3]!.detail!.receive)).toBeGreaterThan(Number(d.journey[1]!.detail!.receive));
    expect((d as unknown as { retries: number }).retries).toBe(1);
  });

  it('media: a media_stored step with key, size and type, and the object streamed through the console', async () => {
    const wamid = 'wamid.console-media-0004';
    await post(wamid, mediaMessage('image', wamid, 'media-console-1', 'image/jpeg'));
    const d = await detailWhen(handleOf(wamid), (x) => x.outcome === 'delivered', 'delivered');
    expect(steps(d)).toEqual(['received', 'claimed', 'media_stored', 'delivered', 'completed']);
    const media = d.journey[2]!.detail!;
    expect(media).toMatchObject({ key: expect.stringMatching(/^media\//), size: expect.any(Number), type: expect.any(String) });
    const head = await c.rig.headObject(String(media.key));
    expect(head).toMatchObject({ found: true, size: media.size });
    const res = await c.api(d.media!.href);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(media.type);
    expect(res.headers.get('content-disposition')).toBe('attachment');
    expect((await res.arrayBuffer()).byteLength).toBe(media.size);
  });

  it('a parked event and its redrive: parked (reason) → redriven → claimed → delivered → completed', async () => {
    const wamid = 'wamid.console-parked-0005';
    remote.bird.failNext(1, { status: 400 });
    await post(wamid);
    const parked = await detailWhen(handleOf(wamid), (x) => x.outcome === 'parked', 'parked');
    expect(steps(parked)).toEqual(['received', 'claimed', 'parked']);
    expect(parked.reason).toBe('bird_rejected_400');
    expect(parked.journey[2]!.detail).toMatchObject({ reason: 'bird_rejected_400' });

    const dlq = await json<{ items: { id: string; handle: string; reason: string; lineId: string }[]; reasons: string[] }>(await c.api('dlq?queue=inbound&reason=bird_rejected_400'));
    const entry = dlq.items.find((i) => i.handle === handleOf(wamid));
    expect(entry).toMatchObject({ reason: 'bird_rejected_400', lineId: LINES.doc.lineId });
    expect(JSON.stringify(dlq)).not.toContain(SENDER);

    const redrive = await c.api(`dlq/${encodeURIComponent(entry!.id)}/redrive?queue=inbound`, { method: 'POST' });
    expect(redrive.status).toBe(202);
    expect(await redrive.json()).toMatchObject({ redriven: 1 });
    const done = await detailWhen(handleOf(wamid), (x) => x.outcome === 'delivered' && steps(x).includes('redriven'), 'delivered after the redrive');
    expect(steps(done)).toEqual(['received', 'claimed', 'parked', 'redriven', 'claimed', 'delivered', 'completed']);
    expect((await c.api(`dlq/${encodeURIComponent(entry!.id)}/redrive?queue=inbound`, { method: 'POST' })).status).toBe(404);
  });

  it('redrives by reason (202 with how many) and purges the DLQ', async () => {
    remote.bird.failNext(2, { status: 403 });
    const wamids = ['wamid.console-bulk-0010', 'wamid.console-bulk-0011'];
    for (const wamid of wamids) {
      await post(wamid);
      await detailWhen(handleOf(wamid), (x) => x.outcome === 'parked', 'parked');
    }
    const listed = await json<{ items: { reason: string }[]; reasons: string[]; total: number }>(await c.api('dlq?queue=inbound&reason=bird_rejected_403'));
    expect(listed.total).toBe(2);
    expect(listed.reasons).toEqual(['bird_rejected_403']);
    const redrive = await c.api('dlq/redrive?queue=inbound&reason=bird_rejected_403', { method: 'POST' });
    expect(redrive.status).toBe(202);
    expect(await redrive.json()).toMatchObject({ redriven: 2, failed: 0 });
    for (const wamid of wamids) await detailWhen(handleOf(wamid), (x) => x.outcome === 'delivered', 'delivered after the bulk redrive');

    remote.bird.failNext(1, { status: 403 });
    await post('wamid.console-bulk-0012');
    await detailWhen(handleOf('wamid.console-bulk-0012'), (x) => x.outcome === 'parked', 'parked');
    const purge = await c.api('dlq/purge?queue=inbound', { method: 'POST' });
    expect(purge.status).toBe(200);
    expect(((await purge.json()) as { purged: number }).purged).toBeGreaterThanOrEqual(1);
    expect((await json<{ total: number }>(await c.api('dlq?queue=inbound'))).total).toBe(0);
  });

  it('pages a line newest first with a cursor, and merges every line when none is named', async () => {
    const wamids = [1, 2, 3, 4, 5].map((i) => `wamid.console-page-00${i}`);
    for (const wamid of wamids) {
      await post(wamid);
      await detailWhen(handleOf(wamid), (x) => x.outcome === 'delivered', 'delivered');
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page: { items: { handle: string }[]; cursor?: string } = await json(
        await c.api(`events?lineId=${LINES.doc.lineId}&limit=2${cursor ? `&cursor=${cursor}` : ''}`),
      );
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((i) => i.handle));
      cursor = page.cursor;
      pages++;
    } while (cursor && pages < 50);
    expect(new Set(seen).size).toBe(seen.length);
    const newestFive = seen.slice(0, 5);
    expect(newestFive).toEqual([...wamids].reverse().map(handleOf));

    const merged: string[] = [];
    cursor = undefined;
    do {
      const page: { items: { handle: string }[]; cursor?: string } = await json(await c.api(`events?limit=3${cursor ? `&cursor=${cursor}` : ''}`));
      merged.push(...page.items.map((i) => i.handle));
      cursor = page.cursor;
    } while (cursor);
    expect(merged.sort()).toEqual([...seen].sort());
  });

  it('lines: each with its transport, last event and last hour by outcome; stats per minute', async () => {
    const lines = await json<{ items: { lineId: string; active: boolean; transport: string; lastEventAt: string | null; lastHour: Record<string, number> }[] }>(await c.api('lines'));
    const doc = lines.items.find((l) => l.lineId === LINES.doc.lineId)!;
    expect(doc).toMatchObject({ active: true, transport: 'flow', lastEventAt: expect.any(String) });
    expect(doc.lastHour.delivered).toBeGreaterThanOrEqual(4);
    expect(doc.lastHour.duplicate).toBeGreaterThanOrEqual(1);
    expect(Object.keys(doc.lastHour).sort()).toEqual(['delivered', 'duplicate', 'failed', 'parked', 'retried', 'sent']);
    const third = lines.items.find((l) => l.lineId === LINES.third.lineId)!;
    expect(third.lastEventAt).toBeNull();
    const stats = await json<{ buckets: { minute: string; counts: Record<string, number> }[] }>(await c.api('stats?minutes=60'));
    expect(stats.buckets).toHaveLength(60);
    const total = stats.buckets.reduce((n, b) => n + (b.counts.delivered ?? 0), 0);
    expect(total).toBe(lines.items.reduce((n, l) => n + (l.lastHour.delivered ?? 0), 0));
  });
});

describe('outbound replies', () => {
  interface OutboundDetail {
    id: string;
    status: string;
    to: string;
    lineId: string;
    journey: { at: string; step: string; detail?: string }[];
  }

  it('a reply through to read: queued → sending → sent → delivered → read, streamed, listed by line, recipient and status', async () => {
    const stream = openStream(`stream?lineId=${LINES.doc.lineId}`, { authorization: `Bearer ${CONSOLE_TOKEN}` });
    await waitFor(async () => stream.status() === 200, 2000, 'the stream to open');
    const id = await reply('your order ships today', 'console-reply-1');
    let detail: OutboundDetail | undefined;
    await waitFor(
      async () => {
        const res = await c.api(`outbound/${id}`);
        detail = res.status === 200 ? await json<OutboundDetail>(res) : undefined;
        return detail?.status === 'read';
      },
      15_000,
      'the reply read',
    );
    expect(detail!.journey.map((s) => s.step)).toEqual(['queued', 'sending', 'sent', 'delivered', 'read']);
    expect(detail).toMatchObject({ id, lineId: LINES.doc.lineId, to: '1650*****34' });
    expect(JSON.stringify(detail)).not.toContain(SENDER);
    expect(JSON.stringify(detail)).not.toContain('your order ships today');
    await waitFor(async () => stream.events.filter((e) => e.handle === id).some((e) => e.step === 'read'), 5000, 'read on the stream');
    expect(stream.events.filter((e) => e.handle === id).map((e) => e.step)).toEqual(expect.arrayContaining(['sending', 'sent', 'delivered', 'read']));
    stream.close();

    const byLine = await json<{ items: { id: string; status: string }[] }>(await c.api(`outbound?lineId=${LINES.doc.lineId}`));
    expect(byLine.items.find((i) => i.id === id)).toMatchObject({ status: 'read' });
    const byTo = await json<{ items: { id: string }[] }>(await c.api(`outbound?to=${SENDER}`));
    expect(byTo.items.map((i) => i.id)).toContain(id);
    expect((await json<{ items: unknown[] }>(await c.api('outbound?to=15550000000'))).items).toEqual([]);
    expect((await json<{ items: { id: string }[] }>(await c.api('outbound?status=failed'))).items.map((i) => i.id)).not.toContain(id);
    const lines = await json<{ items: { lineId: string; lastHour: Record<string, number> }[] }>(await c.api('lines'));
    expect(lines.items.find((l) => l.lineId === LINES.doc.lineId)!.lastHour.sent).toBeGreaterThanOrEqual(1);
    expect((await c.api('outbound/ob_nothing')).status).toBe(404);
  });

  it('a failed reply: failed with Meta\'s code and title, counted in the line', async () => {
    remote.graph.messages.failNextSends(1, { code: 131047, message: 'Re-engagement message' });
    const id = await reply('too late', 'console-reply-2');
    let detail: OutboundDetail | undefined;
    await waitFor(
      async () => {
        detail = await json<OutboundDetail>(await c.api(`outbound/${id}`));
        return detail.status === 'failed';
      },
      15_000,
      'the reply failed',
    );
    expect(detail!.journey.map((s) => s.step)).toEqual(['queued', 'sending', 'failed']);
    expect(detail!.journey[2]!.detail).toContain('131047');
    const failed = await json<{ items: { id: string }[] }>(await c.api(`outbound?lineId=${LINES.doc.lineId}&status=failed`));
    expect(failed.items.map((i) => i.id)).toEqual([id]);
    const lines = await json<{ items: { lineId: string; lastHour: Record<string, number> }[] }>(await c.api('lines'));
    expect(lines.items.find((l) => l.lineId === LINES.doc.lineId)!.lastHour.failed).toBe(1);
    expect((await c.api('dlq?queue=outbound')).status).toBe(200);
  });

  it('an operator decides a reply parked uncertain: resend sends it once more; mark-sent settles it; both conditional and journaled', async () => {
    const parked = async (key: string) => {
      const id = await reply('are you there?', key);
      let detail: OutboundDetail & { awaitsOperator: boolean } = { awaitsOperator: false } as never;
      await waitFor(async () => (detail = await json<typeof detail>(await c.api(`outbound/${id}`))).awaitsOperator, 20_000, 'the reply parked uncertain');
      expect(detail.status).toBe('uncertain');
      const listed = await json<{ items: { id: string }[] }>(await c.api(`outbound?lineId=${LINES.doc.lineId}&status=uncertain`));
      expect(listed.items.map((i) => i.id)).toContain(id);
      await waitFor(async () => (await json<{ items: { handle: string; reason: string }[] }>(await c.api('dlq?queue=outbound'))).items.some((e) => e.handle === id && e.reason === 'send_uncertain'), 10_000, 'the parked job');
      return id;
    };
    const decide = (id: string, action: string, body: unknown) => c.api(`outbound/${id}/${action}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

    remote.graph.messages.failNextSends(2, { code: 131000 });
    const resent = await parked('console-uncertain-resend');
    expect((await decide(resent, 'resend', {})).status).toBe(400);
    const resend = await decide(resent, 'resend', { reason: 'nothing on the phone', operator: 'anna' });
    expect(resend.status).toBe(200);
    expect(await json(resend)).toMatchObject({ id: resent, status: 'uncertain', redriven: 1 });
    let after: OutboundDetail | undefined;
    await waitFor(async () => ['sent', 'delivered', 'read'].includes((after = await json<OutboundDetail>(await c.api(`outbound/${resent}`))).status), 15_000, 'the resend accepted');
    expect(remote.graph.messages.sends().filter((s) => s.callbackData === resent).map((s) => s.outcome)).toEqual(['error', 'error', 'accepted']);
    expect(after!.journey.map((s) => [s.step, s.detail ?? ''])).toContainEqual(['operator', 'resend allowed by console:anna: nothing on the phone']);
    expect((await decide(resent, 'mark-sent', { reason: 'too late' })).status).toBe(409);

    remote.graph.messages.failNextSends(2, { code: 131000 });
    const marked = await parked('console-uncertain-mark');
    const mark = await decide(marked, 'mark-sent', { reason: 'the person confirmed' });
    expect(mark.status).toBe(200);
    const settled = await json<OutboundDetail & { wamid?: string }>(await c.api(`outbound/${marked}`));
    expect(settled.status).toBe('sent');
    expect(settled.wamid).toBeUndefined();
    expect(settled.journey.at(-1)!.detail).toContain('marked sent by console: the person confirmed');
    // Its parked job left the DLQ, and the sender dropped it: still 2 POSTs.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await json<{ items: { handle: string }[] }>(await c.api('dlq?queue=outbound'))).items.map((e) => e.handle)).not.toContain(marked);
    expect(remote.graph.messages.sends().filter((s) => s.callbackData === marked)).toHaveLength(2);
    expect((await decide('ob_nothing', 'resend', { reason: 'x' })).status).toBe(404);
  }, 60_000);
});
