import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observability/logger';
import { echoResponder, startBirdStandIn, type BirdStandIn } from '../../src/local/bird-standin';

const SECRET = 'one-secret-for-all-flows';
const SIGNING = 'signing-key-that-never-travels';
const logLines: string[] = [];
const logger = createLogger({
  level: 'info',
  destination: new Writable({
    write(chunk, _enc, done) {
      logLines.push(String(chunk));
      done();
    },
  }),
});

let dir: string;
let bird: BirdStandIn;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bird-standin-'));
  bird = await startBirdStandIn({ flowSecrets: SECRET, flowSigningSecrets: SIGNING, accessKey: 'ak', inboxFile: join(dir, 'nested', 'bird-inbox.jsonl'), logger });
});
afterAll(async () => {
  await bird.stop();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => bird.reset());

const flowBody = (reference: string) => ({
  reference,
  kind: 'message',
  line: { lineId: 'demo' },
  contact: { waId: '16505551234' },
  receivedAt: '2026-11-22T07:00:00.000Z',
  message: { id: 'wamid.1', type: 'text', text: 'hi' },
  raw: {},
});

async function postFlow(body: unknown, headers: Record<string, string | undefined> = {}, path = '/flows/any') {
  const raw = Buffer.from(JSON.stringify(body));
  const base: Record<string, string | undefined> = {
    'content-type': 'application/json',
    authorization: `Bearer ${SECRET}`,
    'idempotency-key': (body as { reference?: string }).reference,
    'x-wa-ingress-signature-256': `sha256=${createHmac('sha256', SIGNING).update(raw).digest('hex')}`,
  };
  const merged = Object.fromEntries(Object.entries({ ...base, ...headers }).filter(([, v]) => v !== undefined)) as Record<string, string>;
  const response = await fetch(bird.flowUrl(path), { method: 'POST', headers: merged, body: raw });
  return { status: response.status, json: (await response.json()) as { code?: string } };
}

describe('Bird stand-in, flow transport', () => {
  it('accepts a well-formed signed event once, writes one inbox line and one log line without the phone number', async () => {
    expect((await postFlow(flowBody('msg#1#a'))).status).toBe(202);
    expect((await postFlow(flowBody('msg#1#a'))).status).toBe(200); // same Idempotency-Key: a duplicate
    expect(bird.received().map((r) => r.duplicate)).toEqual([false, true]);
    const lines = readFileSync(join(dir, 'nested', 'bird-inbox.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ transport: 'flow', idempotencyKey: 'msg#1#a', body: { reference: 'msg#1#a' } });
    const accepted = logLines.filter((l) => l.includes('accepted event')).map((l) => JSON.parse(l));
    expect(accepted[0]).toMatchObject({ kind: 'message', reference: 'msg#1#a', lineId: 'demo' });
    expect(logLines.join('')).not.toContain('16505551234');
  });

  it.each([
    ['no bearer', { authorization: undefined }, 401, 'unauthorized'],
    ['a wrong bearer', { authorization: 'Bearer nope' }, 401, 'unauthorized'],
    ['a signature over other bytes', { 'x-wa-ingress-signature-256': `sha256=${'0'.repeat(64)}` }, 401, 'bad_signature'],
    ['no signature where the flow has a signing secret', { 'x-wa-ingress-signature-256': undefined }, 401, 'bad_signature'],
    ['no Idempotency-Key', { 'idempotency-key': undefined }, 400, 'missing_idempotency_key'],
  ])('answers %s with a JSON error', async (_name, headers, status, code) => {
    const answer = await postFlow(flowBody('msg#1#b'), headers);
    expect(answer).toEqual({ status, json: expect.objectContaining({ code }) });
    expect(bird.received()).toHaveLength(0);
  });

  it('refuses a body signed with the Bearer secret (a key that travels proves nothing); a flow without a signing secret needs no signature', async () => {
    const body = flowBody('msg#1#c');
    const underBearer = `sha256=${createHmac('sha256', SECRET).update(Buffer.from(JSON.stringify(body))).digest('hex')}`;
    expect(await postFlow(body, { 'x-wa-ingress-signature-256': underBearer })).toEqual({ status: 401, json: expect.objectContaining({ code: 'signature_key_travels' }) });
    const unsigned = await startBirdStandIn({ flowSecrets: SECRET, flowSigningSecrets: {}, logger: createLogger({ level: 'silent' }) });
    try {
      const raw = JSON.stringify(body);
      const headers = { 'content-type': 'application/json', authorization: `Bearer ${SECRET}`, 'idempotency-key': body.reference };
      expect((await fetch(unsigned.flowUrl('/flows/any'), { method: 'POST', headers, body: raw })).status).toBe(202);
    } finally {
      await unsigned.stop();
    }
  });

  it('answers 400 naming the missing fields', async () => {
    const { reference: _r, contact: _c, ...rest } = flowBody('x');
    const answer = await postFlow({ ...rest, reference: undefined }, { 'idempotency-key': 'x' });
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ code: 'invalid_body' });
    expect(JSON.stringify(answer.json)).toMatch(/reference.*contact/);
  });

  it('serves only the configured flow paths when given a secret per path', async () => {
    const perPath = await startBirdStandIn({ flowSecrets: { '/flows/a': 'sa' }, logger: createLogger({ level: 'silent' }) });
    try {
      const response = await fetch(perPath.flowUrl('/flows/b'), { method: 'POST', body: '{}' });
      expect(response.status).toBe(404);
    } finally {
      await perPath.stop();
    }
  });
});

describe('Bird stand-in, conversations transport', () => {
  async function call(method: string, path: string, body?: unknown, key = 'ak') {
    const response = await fetch(`${bird.conversationsBaseUrl}${path}`, {
      method,
      headers: { authorization: `AccessKey ${key}`, 'content-type': 'application/json', 'idempotency-key': 'conv-msg-1' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  }

  it('checks the AccessKey and the documented message body shape', async () => {
    expect((await call('GET', '/workspaces/w/participants/phonenumber/%2B1555/conversations?channelId=c', undefined, 'bad')).status).toBe(401);
    const created = await call('POST', '/workspaces/w/conversations', {
      channelId: 'c',
      participants: [{ type: 'contact', identifierKey: 'phonenumber', identifierValue: '+1555' }],
    });
    expect(created.status).toBe(201);
    const id = created.json.id as string;
    const messages = `/workspaces/w/conversations/${id}/messages`;
    const bad = await call('POST', messages, { participantType: 'contact', reference: 'r', body: { type: 'image', image: { images: [] } } });
    expect(bad).toEqual({ status: 422, json: expect.objectContaining({ code: 'invalid_body' }) });
    const file = await call('POST', messages, { participantType: 'contact', reference: 'r', body: { type: 'file', file: { files: [{ mediaUrl: 'https://x' }] } } });
    expect(file.status).toBe(422); // contentType is required for files
    const good = await call('POST', messages, { participantType: 'contact', reference: 'r', body: { type: 'text', text: { text: 'hi' } } });
    expect(good.status).toBe(201);
    expect((await call('POST', '/workspaces/w/conversations/unknown/messages', { participantType: 'contact' })).status).toBe(404);
    const listed = await call('GET', '/workspaces/w/participants/phonenumber/%2B1555/conversations?channelId=c');
    expect(listed.json.results).toEqual([expect.objectContaining({ id })]);
    expect(bird.received()).toHaveLength(1);
  });
});

describe('Bird stand-in, echo AI', () => {
  it('answers a message event with replies (the synchronous Flow answer), statuses with none, and a custom responder wins', async () => {
    bird.respondWith(echoResponder);
    expect((await postFlow(flowBody('msg#1#echo'))).json).toEqual({
      status: 'accepted',
      reference: 'msg#1#echo',
      replies: [{ type: 'text', text: { body: 'echo: hi' } }],
    });
    const status = { ...flowBody('status#wamid.1#read'), kind: 'status', message: undefined, status: { id: 'wamid.1', status: 'read' } };
    expect((await postFlow(status)).json).toEqual({ status: 'accepted', reference: 'status#wamid.1#read' });
    bird.respondWith((_body, call) => ({ replies: [{ type: 'text', text: { body: `call ${call.count}` } }] }));
    expect((await postFlow(flowBody('msg#1#again'))).json).toEqual(expect.objectContaining({ replies: [{ type: 'text', text: { body: 'call 1' } }] }));
    expect((await postFlow(flowBody('msg#1#again'))).json).toEqual(expect.objectContaining({ replies: [{ type: 'text', text: { body: 'call 2' } }] }));
    bird.respondWith(undefined);
    expect((await postFlow(flowBody('msg#1#plain'))).json).toEqual({ status: 'accepted', reference: 'msg#1#plain' });
  });
});
