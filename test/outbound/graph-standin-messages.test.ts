import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sign } from '../../src/ingress/signature';
import { startGraphStandIn, type GraphStandIn } from '../../src/local/graph-standin';
import { waitFor } from '../support/child';

const TOKEN = 'standin-token';
const SECRET = 'standin-app-secret';
let graph: GraphStandIn;
let hooks: Server;
const received: Array<{ body: string; signature: string | undefined }> = [];
const outbox = join(mkdtempSync(join(tmpdir(), 'wa-outbox-')), 'whatsapp-outbox.jsonl');

beforeAll(async () => {
  hooks = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ body: Buffer.concat(chunks).toString('utf8'), signature: req.headers['x-hub-signature-256'] as string | undefined });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', () => r()));
  graph = await startGraphStandIn({ token: TOKEN, messages: { outboxFile: outbox, statusDelayMs: 5 } });
  graph.messages.setWebhookTarget(`http://127.0.0.1:${(hooks.address() as AddressInfo).port}/webhooks/whatsapp`, SECRET);
});

afterAll(async () => {
  await graph.stop();
  await new Promise((r) => hooks.close(r));
});

beforeEach(() => {
  graph.messages.reset();
  received.length = 0;
});

async function send(body: unknown, token = TOKEN) {
  const res = await fetch(`${graph.baseUrl}/v25.0/106540352242922/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

const text = { messaging_product: 'whatsapp', to: '+16505551234', type: 'text', text: { body: 'hi' }, biz_opaque_callback_data: 'ob_cb' };

describe('Graph stand-in /messages', () => {
  it('answers Meta\'s shape, writes the outbox and posts signed sent, delivered and read webhooks echoing biz_opaque_callback_data', async () => {
    const answer = await send(text);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ messaging_product: 'whatsapp', contacts: [{ input: '+16505551234', wa_id: '16505551234' }], messages: [{ id: expect.stringMatching(/^wamid\./) }] });
    const wamid = answer.body.messages[0].id;
    expect(readFileSync(outbox, 'utf8').trim().split('\n').map((l) => JSON.parse(l).wamid)).toContain(wamid);

    await waitFor(async () => received.length === 3, 5000, 'three status webhooks');
    for (const hook of received) expect(hook.signature).toBe(sign(SECRET, hook.body));
    const statuses = received.map((h) => JSON.parse(h.body).entry[0].changes[0].value.statuses[0]);
    expect(statuses.map((s) => s.status).sort()).toEqual(['delivered', 'read', 'sent']);
    for (const s of statuses) expect(s).toMatchObject({ id: wamid, recipient_id: '16505551234', biz_opaque_callback_data: 'ob_cb' });
    expect(JSON.parse(received[0]!.body).entry[0].changes[0].value.metadata.phone_number_id).toBe('106540352242922');
  });

  it('validates as Meta does, with Meta\'s error body', async () => {
    const noProduct = await send({ ...text, messaging_product: undefined });
    expect(noProduct.status).toBe(400);
    expect(noProduct.body.error).toMatchObject({ code: 100, type: 'OAuthException', fbtrace_id: expect.any(String) });
    const tooManyButtons = await send({
      ...text,
      type: 'interactive',
      interactive: { type: 'button', body: { text: 'b' }, action: { buttons: [1, 2, 3, 4].map((n) => ({ type: 'reply', reply: { id: `${n}`, title: `${n}` } })) } },
    });
    expect(tooManyButtons.status).toBe(400);
    expect(tooManyButtons.body.error.code).toBe(131009);
    expect((await send(text, 'wrong-token')).body.error.code).toBe(190);
  });

  it('faults: error codes n times, then normal', async () => {
    graph.messages.setStatuses(false);
    graph.messages.failNextSends(2, { code: 130429 });
    expect((await send(text)).body.error.code).toBe(130429);
    expect((await send(text)).body.error.code).toBe(130429);
    expect((await send(text)).status).toBe(200);
    graph.messages.failNextSends(1, { code: 131000 });
    expect((await send(text)).status).toBe(500);
    expect(graph.messages.sends().map((s) => s.outcome)).toEqual(['error', 'error', 'accepted', 'error']);
  });

  it('accept-then-lose-the-response: the connection drops, the send is recorded, statuses as told', async () => {
    graph.messages.loseNextResponses(1, { statuses: false });
    await expect(send(text)).rejects.toThrow();
    expect(graph.messages.sends()[0]).toMatchObject({ outcome: 'lost', callbackData: 'ob_cb', wamid: expect.stringMatching(/^wamid\./) });
    await new Promise((r) => setTimeout(r, 100));
    expect(received).toHaveLength(0);
  });

  it('a recipient whose sends all drop their connection: never accepted, no wamid, no status; others unaffected', async () => {
    graph.messages.dropConnectionsTo('16505550999');
    await expect(send({ ...text, to: '16505550999' })).rejects.toThrow();
    await expect(send({ ...text, to: '16505550999' })).rejects.toThrow();
    expect((await send(text)).status).toBe(200);
    expect(graph.messages.sends().map((s) => [s.to, s.outcome, s.wamid])).toEqual([
      ['16505550999', 'dropped', undefined],
      ['16505550999', 'dropped', undefined],
      [text.to, 'accepted', expect.stringMatching(/^wamid\./)],
    ]);
    await new Promise((r) => setTimeout(r, 100));
    expect(received.filter((r) => r.body.includes('16505550999'))).toHaveLength(0);
  });

  it('the read / typing call answers {success: true}', async () => {
    const answer = await send({ messaging_product: 'whatsapp', status: 'read', message_id: 'wamid.in', typing_indicator: { type: 'text' } });
    expect(answer).toEqual({ status: 200, body: { success: true } });
    expect(graph.messages.readCalls()).toEqual([{ phoneNumberId: '106540352242922', messageId: 'wamid.in', typing: true, outcome: 'ok' }]);
    graph.messages.failNextReads(1);
    expect((await send({ messaging_product: 'whatsapp', status: 'read', message_id: 'wamid.in' })).status).toBe(500);
  });
});
