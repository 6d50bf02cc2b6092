import { GetObjectCommand } from '@aws-sdk/client-s3';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { sign } from '../../src/ingress/signature';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { FIXTURES_DIR, webhookFixtures } from '../support/fixtures';
import { httpRequest, keepAliveAgent } from '../support/http';
import { APP_SECRET, ROTATED_SECRET, VERIFY_TOKEN, startIngressHarness, type IngressHarness } from '../support/ingress';

let aws: AwsHarness;
let gw: IngressHarness;

beforeAll(async () => {
  aws = await startAwsHarness();
  gw = await startIngressHarness(aws, { sendTimeoutMs: 2500 });
  await gw.putLines([
    {
      lineId: 'line-a',
      phoneNumberId: '106540352242922',
      wabaId: '102290129340398',
      displayPhoneNumber: '15550783881',
      appSecrets: ['env:WA_LINE_SECRET_LINE_A'],
      verifyToken: 'line-a-verify',
      bird: { transport: 'flow', flowUrl: 'http://127.0.0.1:9/flow', flowSecret: 'flow-secret' },
    },
    {
      lineId: 'line-off',
      phoneNumberId: '999',
      wabaId: '1',
      displayPhoneNumber: '15550000000',
      active: false,
      bird: { transport: 'flow', flowUrl: 'http://127.0.0.1:9/flow', flowSecret: 'flow-secret' },
    },
  ]);
});

afterAll(async () => {
  await gw.stop();
  await aws.stop();
});

beforeEach(async () => {
  await aws.drainQueue();
});

function post(path: string, body: Buffer | string, headers: Record<string, string> = {}) {
  return fetch(`${gw.url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
}
const signed = (body: Buffer | string, secret = APP_SECRET) => ({ 'x-hub-signature-256': sign(secret, body) });
const attr = (m: { MessageAttributes?: Record<string, { StringValue?: string }> }, name: string) => m.MessageAttributes?.[name]?.StringValue;

describe('GET verification', () => {
  const verify = (path: string, query: string) => fetch(`${gw.url}${path}?${query}`);

  it('echoes the challenge byte for byte for the right token', async () => {
    const res = await verify('/webhooks/whatsapp', `hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=${VERIFY_TOKEN}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toBe('1158201444');
  });

  it('refuses a wrong token with 403 and a JSON body', async () => {
    const res = await verify('/webhooks/whatsapp', 'hub.mode=subscribe&hub.challenge=c&hub.verify_token=wrong');
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('verification_failed');
  });

  it('refuses a wrong mode with 403', async () => {
    const res = await verify('/webhooks/whatsapp', `hub.mode=unsubscribe&hub.challenge=c&hub.verify_token=${VERIFY_TOKEN}`);
    expect(res.status).toBe(403);
  });

  it('answers 400 when parameters are missing', async () => {
    const res = await verify('/webhooks/whatsapp', 'hub.mode=subscribe');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('missing_parameters');
  });

  it("uses the line's own verify token on its URL, and 404 for an unknown line", async () => {
    expect((await verify('/webhooks/whatsapp/line-a', 'hub.mode=subscribe&hub.challenge=x1&hub.verify_token=line-a-verify')).status).toBe(200);
    expect((await verify('/webhooks/whatsapp/line-a', `hub.mode=subscribe&hub.challenge=x1&hub.verify_token=${VERIFY_TOKEN}`)).status).toBe(403);
    expect((await verify('/webhooks/whatsapp/nope', `hub.mode=subscribe&hub.challenge=x1&hub.verify_token=${VERIFY_TOKEN}`)).status).toBe(404);
  });
});

describe('POST: good payloads', () => {
  it('enqueues every fixture as exactly one SQS message whose body is byte-identical', async () => {
    const fixtures = webhookFixtures();
    expect(fixtures.length).toBeGreaterThanOrEqual(50);
    for (const fixture of fixtures) {
      const res = await post('/webhooks/whatsapp', fixture.raw, { ...signed(fixture.raw), traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
      expect({ fixture: fixture.name, status: res.status }).toEqual({ fixture: fixture.name, status: 200 });
      const messages = await aws.drainQueue();
      expect({ fixture: fixture.name, count: messages.length }).toEqual({ fixture: fixture.name, count: 1 });
      const [message] = messages;
      expect(Buffer.from(message!.Body!, 'utf8').equals(fixture.raw)).toBe(true);
      expect(attr(message!, 'bodySha256')).toBe(createHash('sha256').update(fixture.raw).digest('hex'));
      expect(Date.parse(attr(message!, 'receivedAt')!)).not.toBeNaN();
      expect(attr(message!, 'requestId')).toBe(res.headers.get('x-request-id'));
      expect(attr(message!, 'traceparent')).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
      expect(attr(message!, 'lineId')).toBeUndefined();
    }
  });

  it('accepts the real Meta-signed pywa body with its published secret', async () => {
    const body = readFileSync(join(FIXTURES_DIR, 'signature-vector-pywa-real.body'));
    // The gateway under test holds other secrets: the vector's secret is refused there...
    expect((await post('/webhooks/whatsapp', body, { 'x-hub-signature-256': 'sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441' })).status).toBe(401);
    // ...and the same bytes signed with a configured secret are queued unchanged.
    expect((await post('/webhooks/whatsapp', body, signed(body))).status).toBe(200);
    const [message] = await aws.drainQueue();
    expect(Buffer.from(message!.Body!).equals(body)).toBe(true);
  });

  it('accepts both rotated secrets', async () => {
    const body = webhookFixtures()[0]!.raw;
    expect((await post('/webhooks/whatsapp', body, signed(body, APP_SECRET))).status).toBe(200);
    expect((await post('/webhooks/whatsapp', body, signed(body, ROTATED_SECRET))).status).toBe(200);
    expect(await aws.drainQueue()).toHaveLength(2);
  });

  it('accepts non-ASCII bodies signed over the raw bytes and over the escaped form', async () => {
    const text = '{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messages":[{"text":{"body":"みどりいろ pâtes 😀"}}]}}]}]}';
    const raw = Buffer.from(text, 'utf8');
    const escaped = text.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    expect(escaped).not.toBe(text);
    expect((await post('/webhooks/whatsapp', raw, signed(raw))).status).toBe(200);
    expect((await post('/webhooks/whatsapp', raw, signed(escaped))).status).toBe(200);
    const messages = await aws.drainQueue();
    expect(messages).toHaveLength(2);
    for (const m of messages) expect(Buffer.from(m.Body!, 'utf8').equals(raw)).toBe(true);
  });

  it('acknowledges a signed payload for another object without enqueueing it', async () => {
    const body = '{"object":"page","entry":[]}';
    const res = await post('/webhooks/whatsapp', body, signed(body));
    expect(res.status).toBe(200);
    expect(await aws.drainQueue()).toHaveLength(0);
    expect(await gw.metric('wa_ingress_ignored_payloads_total')).toBeGreaterThanOrEqual(1);
  });
});

describe('POST: bad input', () => {
  const body = '{"object":"whatsapp_business_account","entry":[]}';
  it.each([
    ['missing header', {}, 'missing'],
    ['wrong prefix', { 'x-hub-signature-256': sign(APP_SECRET, body).replace('sha256=', 'sha1=') }, 'malformed'],
    ['wrong length', { 'x-hub-signature-256': sign(APP_SECRET, body).slice(0, -2) }, 'malformed'],
    ['wrong secret', { 'x-hub-signature-256': sign('not-our-secret', body) }, 'mismatch'],
  ])('%s: 401, counted by reason, nothing enqueued', async (_name, headers, reason) => {
    const before = await gw.metric('wa_ingress_signature_failures_total', { reason });
    const res = await post('/webhooks/whatsapp', body, headers as Record<string, string>);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_signature');
    expect(await gw.metric('wa_ingress_signature_failures_total', { reason })).toBe(before + 1);
    expect(await aws.drainQueue()).toHaveLength(0);
  });

  it.each([
    ['not JSON', 'not json'],
    ['a JSON array', '[1,2]'],
    ['an object without entry', '{"object":"whatsapp_business_account"}'],
    ['entry not an array', '{"object":"whatsapp_business_account","entry":{}}'],
  ])('a signed body that is %s gets 400', async (_name, bad) => {
    const res = await post('/webhooks/whatsapp', bad, signed(bad));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_payload');
    expect(await aws.drainQueue()).toHaveLength(0);
  });

  it('routes it does not know get 404 JSON', async () => {
    const res = await fetch(`${gw.url}/nowhere`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toBe('not_found');
  });
});

describe('POST: size and claim check', () => {
  function bigPayload(bytes: number): Buffer {
    const head = '{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"padding":"';
    const tail = '"}}]}]}';
    return Buffer.from(head + 'x'.repeat(bytes - head.length - tail.length) + tail, 'utf8');
  }

  it('puts a 2.9 MB body in S3 and a pointer on SQS; the object is byte-identical', async () => {
    const body = bigPayload(2.9 * 1024 * 1024);
    const res = await post('/webhooks/whatsapp', body, signed(body));
    expect(res.status).toBe(200);
    const [message, ...rest] = await aws.drainQueue();
    expect(rest).toHaveLength(0);
    const pointer = JSON.parse(message!.Body!) as { claimCheck: { bucket: string; key: string; sha256: string; size: number } };
    const sha = createHash('sha256').update(body).digest('hex');
    expect(pointer.claimCheck).toEqual({ bucket: aws.names.bucket, key: `claim-check/${sha}.json`, sha256: sha, size: body.length });
    expect(attr(message!, 'claimCheck')).toBe(`s3://${aws.names.bucket}/claim-check/${sha}.json`);
    const object = await aws.clients.s3.send(new GetObjectCommand({ Bucket: pointer.claimCheck.bucket, Key: pointer.claimCheck.key }));
    expect(Buffer.from(await object.Body!.transformToByteArray()).equals(body)).toBe(true);
  });

  it.each([
    ['a character SQS refuses (U+FFFF)', Buffer.from('{"object":"whatsapp_business_account","entry":[{"id":"\uffff"}]}', 'utf8')],
    ['bytes that are not UTF-8', Buffer.concat([Buffer.from('{"object":"whatsapp_business_account","entry":[{"id":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}]}')])],
  ])('sends a small body holding %s through the claim check, byte for byte', async (_name, body) => {
    expect(body.toString('utf8')).not.toMatch(/\\u/); // raw bytes, not a JSON escape
    const res = await post('/webhooks/whatsapp', body, signed(body));
    expect(res.status).toBe(200);
    const [message] = await aws.drainQueue();
    expect(attr(message!, 'claimCheck')).toMatch(/^s3:\/\//);
    const pointer = JSON.parse(message!.Body!) as { claimCheck: { key: string } };
    const object = await aws.clients.s3.send(new GetObjectCommand({ Bucket: aws.names.bucket, Key: pointer.claimCheck.key }));
    expect(Buffer.from(await object.Body!.transformToByteArray()).equals(body)).toBe(true);
  });

  it('answers 413 with a JSON body for more than 3 MB', async () => {
    const body = bigPayload(3 * 1024 * 1024 + 1);
    const res = await post('/webhooks/whatsapp', body, signed(body));
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toBe('payload_too_large');
    expect(await aws.drainQueue()).toHaveLength(0);
  });
});

describe('POST: per-line URLs', () => {
  const body = readFileSync(join(FIXTURES_DIR, 'message-text.json'));

  it("accepts the line's own secret on its URL and tags the message with the lineId", async () => {
    const res = await post('/webhooks/whatsapp/line-a', body, signed(body, 'line-a-secret-from-env'));
    expect(res.status).toBe(200);
    const [message] = await aws.drainQueue();
    expect(attr(message!, 'lineId')).toBe('line-a');
  });

  it('also accepts the global secrets on a line URL, but not a line secret on the unified URL', async () => {
    expect((await post('/webhooks/whatsapp/line-a', body, signed(body, APP_SECRET))).status).toBe(200);
    expect((await post('/webhooks/whatsapp', body, signed(body, 'line-a-secret-from-env'))).status).toBe(401);
    expect(await aws.drainQueue()).toHaveLength(1);
  });

  it('answers 404 for an unknown or inactive line and enqueues nothing', async () => {
    expect((await post('/webhooks/whatsapp/unknown-line', body, signed(body))).status).toBe(404);
    const lookups = await gw.metric('wa_ingress_line_store_lookups_total');
    expect((await post(`/webhooks/whatsapp/${'x'.repeat(65)}`, body, signed(body))).status).toBe(404);
    expect((await post('/webhooks/whatsapp/bad%20id', body, signed(body))).status).toBe(404);
    expect(await gw.metric('wa_ingress_line_store_lookups_total')).toBe(lookups); // no table read for impossible ids
    expect((await post('/webhooks/whatsapp/line-off', body, signed(body))).status).toBe(404);
    expect(await aws.drainQueue()).toHaveLength(0);
  });
});

describe('POST: concurrency', () => {
  it('200 concurrent POSTs give 200 messages in far fewer SendMessageBatch calls', async () => {
    // 200 warm keep-alive connections, as Meta's senders hold them.
    const agent = keepAliveAgent(200);
    await Promise.all(Array.from({ length: 200 }, () => httpRequest(agent, `${gw.url}/healthz`)));
    const before = await gw.metric('wa_ingress_sqs_send_batches_total');
    const bodies = Array.from({ length: 200 }, (_, i) =>
      Buffer.from(`{"object":"whatsapp_business_account","entry":[{"id":"${i}","changes":[]}]}`),
    );
    const statuses = await Promise.all(
      bodies.map((b) => httpRequest(agent, `${gw.url}/webhooks/whatsapp`, { method: 'POST', body: b, headers: signed(b) }).then((r) => r.status)),
    );
    agent.destroy();
    expect(statuses.every((s) => s === 200)).toBe(true);
    const calls = (await gw.metric('wa_ingress_sqs_send_batches_total')) - before;
    const messages = await aws.drainQueue();
    expect(messages).toHaveLength(200);
    expect(new Set(messages.map((m) => m.Body)).size).toBe(200);
    expect(calls).toBeLessThanOrEqual(60);
    expect(calls).toBeGreaterThanOrEqual(20); // at most 10 entries per batch
  });
});

describe('request accounting', () => {
  it('counts webhook requests by route, method and status (each request once), not other routes', async () => {
    const body = '{"object":"whatsapp_business_account","entry":[]}';
    const count = (route: string, method: string, status: string) => gw.metric('wa_ingress_webhook_requests_total', { route, method, status });
    const before = {
      ok: await count('/webhooks/whatsapp', 'POST', '200'),
      refused: await count('/webhooks/whatsapp', 'POST', '401'),
      unknownLine: await count('/webhooks/whatsapp/:lineId', 'POST', '404'),
      health: await count('/healthz', 'GET', '200'),
    };
    for (let i = 0; i < 3; i++) expect((await post('/webhooks/whatsapp', body, signed(body))).status).toBe(200);
    expect((await post('/webhooks/whatsapp', body, { 'x-hub-signature-256': sign('nope', body) })).status).toBe(401);
    expect((await post('/webhooks/whatsapp/line-missing', body, signed(body))).status).toBe(404);
    await fetch(`${gw.url}/healthz`);
    expect(await count('/webhooks/whatsapp', 'POST', '200')).toBe(before.ok + 3);
    expect(await count('/webhooks/whatsapp', 'POST', '401')).toBe(before.refused + 1);
    expect(await count('/webhooks/whatsapp/:lineId', 'POST', '404')).toBe(before.unknownLine + 1);
    expect(await count('/healthz', 'GET', '200')).toBe(before.health);
  });

  it("logs a refused request with that request's id (the child logger made on first use)", async () => {
    const body = '{"object":"whatsapp_business_account","entry":[]}';
    const res = await post('/webhooks/whatsapp', body, { 'x-hub-signature-256': sign('nope', body), 'x-request-id': 'req-accounting-1' });
    expect(res.status).toBe(401);
    expect(res.headers.get('x-request-id')).toBe('req-accounting-1');
    const line = gw.logs.lines.map((l) => JSON.parse(l) as { requestId?: string; event?: string }).find((l) => l.requestId === 'req-accounting-1');
    expect(line?.event).toBe('signature_rejected');
  });
});

describe('logs', () => {
  it('never contain secrets, tokens, signatures or whole phone numbers', async () => {
    const phoneNumbers = new Set<string>();
    for (const fixture of webhookFixtures()) {
      const text = fixture.raw.toString('utf8');
      for (const m of text.matchAll(/"(?:display_phone_number|wa_id|from|recipient_id|phone)"\s*:\s*"\+?([0-9 ]{8,})"/g)) phoneNumbers.add(m[1]!.replace(/ /g, ''));
      const sig = sign(APP_SECRET, fixture.raw);
      await post('/webhooks/whatsapp', fixture.raw, { 'x-hub-signature-256': sig });
      await post('/webhooks/whatsapp/line-a', fixture.raw, { 'x-hub-signature-256': sign('wrong', fixture.raw) });
    }
    await fetch(`${gw.url}/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1&hub.verify_token=${VERIFY_TOKEN}`);
    await fetch(`${gw.url}/webhooks/whatsapp/line-a?hub.mode=subscribe&hub.challenge=1&hub.verify_token=wrong-token`);
    await aws.drainQueue();
    const logs = gw.logs.text();
    expect(gw.logs.lines.length).toBeGreaterThan(100);
    expect(phoneNumbers.size).toBeGreaterThan(5);
    for (const secret of [APP_SECRET, ROTATED_SECRET, VERIFY_TOKEN, 'line-a-secret-from-env', 'line-a-verify', 'wrong-token', 'flow-secret']) {
      expect(logs).not.toContain(secret);
    }
    expect(logs).not.toMatch(/sha256=[0-9a-f]{64}/);
    for (const phone of phoneNumbers) expect(logs).not.toContain(phone);
  });
});

describe('outage', () => {
  it('answers 503 with Retry-After while SQS is down, never 200, and recovers without a restart', async () => {
    const body = webhookFixtures()[0]!.raw;
    await aws.standIns.stopSqs();
    try {
      const results = await Promise.all([1, 2, 3].map(() => post('/webhooks/whatsapp', body, signed(body))));
      for (const res of results) {
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toBe('5');
        expect(((await res.json()) as { error: string }).error).toBe('queue_unavailable');
      }
      expect((await fetch(`${gw.url}/readyz`)).status).toBe(503);
    } finally {
      await aws.standIns.startSqs();
    }
    const res = await post('/webhooks/whatsapp', body, signed(body));
    expect(res.status).toBe(200);
    const messages = await aws.drainQueue();
    expect(messages).toHaveLength(1);
  });
});
