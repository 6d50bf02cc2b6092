import { createHmac } from 'node:crypto';
import { Writable } from 'node:stream';
import { HttpBirdClient, type CircuitStateChange, type HttpBirdClientOptions } from '../../src/bird';
import { PermanentError, RetryableError } from '../../src/errors';
import type { BirdTarget } from '../../src/lines/line';
import { createLogger, maskWamids } from '../../src/observability/logger';
import { createRegistry } from '../../src/observability/metrics';
import { echoResponder, startBirdStandIn, type BirdStandIn } from '../../src/local/bird-standin';
import { deliveryOf, fixtureEvent, mediaFor } from './events';

const FLOW_SECRET = 'flow-secret-for-tests';
const SIGNING_SECRET = 'flow-signing-secret-for-tests';
const ACCESS_KEY = 'access-key-for-tests';
const silent = createLogger({ level: 'silent' });

let bird: BirdStandIn;
beforeAll(async () => {
  bird = await startBirdStandIn({ flowSecrets: { '/flows/demo': FLOW_SECRET }, flowSigningSecrets: { '/flows/demo': SIGNING_SECRET }, accessKey: ACCESS_KEY, logger: silent });
});
afterAll(async () => bird.stop());
beforeEach(() => bird.reset());

function flowTarget(secret = FLOW_SECRET, signingSecret: string | null = SIGNING_SECRET): BirdTarget {
  return { transport: 'flow', flowUrl: bird.flowUrl('/flows/demo'), flowSecret: secret, ...(signingSecret !== null ? { flowSigningSecret: signingSecret } : {}) };
}
function conversationsTarget(accessKey = ACCESS_KEY): BirdTarget {
  return { transport: 'conversations', workspaceId: 'ws-1', channelId: 'ch-1', accessKey };
}

function clientWith(overrides: Partial<HttpBirdClientOptions> = {}) {
  const registry = createRegistry({ defaultMetrics: false });
  const client = new HttpBirdClient({
    logger: silent,
    registry,
    birdApiBaseUrl: bird.conversationsBaseUrl,
    timeoutMs: 2000,
    retry: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 20 },
    breaker: { consecutiveFailures: 5, halfOpenAfterMs: 60_000 },
    ...overrides,
  });
  const requests = async (transport: string, outcome: string) =>
    (await registry.getSingleMetric('wa_ingress_bird_requests_total')!.get()).values.find(
      (v) => v.labels.transport === transport && v.labels.outcome === outcome,
    )?.value ?? 0;
  return { client, registry, requests };
}

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the delivery to fail');
}

describe('flow transport', () => {
  it('posts the event signed with the flowSigningSecret (never the Bearer); the stand-in verifies bearer, Idempotency-Key and HMAC over the raw bytes', async () => {
    const { client, registry, requests } = clientWith();
    const event = fixtureEvent('message-text');
    await client.deliver(deliveryOf(event, flowTarget()));

    const [call, ...more] = bird.received();
    expect(more).toHaveLength(0);
    expect(call!.transport).toBe('flow');
    expect(call!.headers.authorization).toBe(`Bearer ${FLOW_SECRET}`);
    expect(call!.headers['content-type']).toBe('application/json');
    expect(call!.idempotencyKey).toBe(event.key);
    const hmac = createHmac('sha256', SIGNING_SECRET).update(call!.rawBody).digest('hex');
    expect(call!.headers['x-wa-ingress-signature-256']).toBe(`sha256=${hmac}`);
    expect(call!.headers['x-wa-ingress-signature-256']).not.toBe(`sha256=${createHmac('sha256', FLOW_SECRET).update(call!.rawBody).digest('hex')}`);
    expect(call!.body).toMatchObject({
      reference: event.key,
      kind: 'message',
      line: { lineId: 'demo-line' },
      contact: { waId: '16505551234' },
      receivedAt: '2026-11-22T07:00:00.000Z',
      message: { id: event.message!.id, type: 'text', text: event.message!.text },
      raw: event.raw,
    });
    expect(await requests('flow', 'delivered')).toBe(1);
    expect(await registry.metrics()).toMatch(/wa_ingress_bird_delivery_duration_seconds_count\{transport="flow",outcome="delivered"\} 1\n/);
  });

  it('sends the media fields when the message has media', async () => {
    const { client } = clientWith();
    const event = fixtureEvent('message-image');
    const media = mediaFor(event);
    await client.deliver(deliveryOf(event, flowTarget(), media));
    expect(bird.received()[0]!.body.message).toMatchObject({
      type: 'image',
      media: { url: media.url, mimeType: media.mimeType, sha256: media.sha256, size: media.size, s3Key: media.s3Key },
    });
  });

  it('without a flowSigningSecret no signature header is sent; a flow that verifies signatures then refuses it', async () => {
    const { client } = clientWith();
    const error = await failureOf(client.deliver(deliveryOf(fixtureEvent('message-text'), flowTarget(FLOW_SECRET, null))));
    expect((error as PermanentError).reason).toBe('bird_rejected_401');
    const unsigned = await startBirdStandIn({ flowSecrets: FLOW_SECRET, flowSigningSecrets: {}, logger: silent });
    try {
      await client.deliver(deliveryOf(fixtureEvent('message-text'), { transport: 'flow', flowUrl: unsigned.flowUrl(), flowSecret: FLOW_SECRET }));
      expect(unsigned.received()[0]!.headers['x-wa-ingress-signature-256']).toBeUndefined();
    } finally {
      await unsigned.stop();
    }
  });

  it('production (requireHttps) refuses a plain-http flowUrl before any call: PermanentError bird_target_insecure', async () => {
    const { client } = clientWith({ requireHttps: true, birdApiBaseUrl: 'https://api.bird.example' });
    const error = await failureOf(client.deliver(deliveryOf(fixtureEvent('message-text'), flowTarget())));
    expect((error as PermanentError).reason).toBe('bird_target_insecure');
    expect(bird.attempts()).toHaveLength(0);
    expect(() => clientWith({ requireHttps: true, birdApiBaseUrl: 'http://api.bird.example' })).toThrow(/birdApiBaseUrl must be https/);
  });

  it('a wrong secret is rejected by the stand-in (401) and is a PermanentError after one attempt', async () => {
    const { client, requests } = clientWith();
    const error = await failureOf(client.deliver(deliveryOf(fixtureEvent('message-text'), flowTarget('wrong'))));
    expect(error).toBeInstanceOf(PermanentError);
    expect((error as PermanentError).reason).toBe('bird_rejected_401');
    expect(bird.attempts().map((a) => a.status)).toEqual([401]);
    expect(bird.received()).toHaveLength(0);
    expect(await requests('flow', 'rejected')).toBe(1);
  });
});

describe("a Flow's synchronous answer", () => {
  it('comes back parsed, replies included, for the pipeline to queue; the conversations transport answers nothing', async () => {
    const { client } = clientWith();
    bird.respondWith(echoResponder);
    const answer = await client.deliver(deliveryOf(fixtureEvent('message-text'), flowTarget()));
    expect(answer).toEqual({
      flowResponse: { status: 'accepted', reference: expect.any(String), replies: [{ type: 'text', text: { body: 'echo: Does it come in another color?' } }] },
      status: 202,
    });
    bird.respondWith(undefined);
    expect(await client.deliver(deliveryOf(fixtureEvent('message-text'), conversationsTarget()))).toEqual({});
  });
});

describe('conversations transport', () => {
  it('finds or creates the contact’s conversation on the channel, then posts the text as the contact', async () => {
    const { client } = clientWith();
    const first = fixtureEvent('message-text');
    const second = fixtureEvent('message-location'); // the same contact
    await client.deliver(deliveryOf(first, conversationsTarget()));
    await client.deliver(deliveryOf(second, conversationsTarget()));

    expect(bird.attempts().map((a) => `${a.method} ${a.path.replace(/[0-9a-f-]{36}/g, '{id}')} ${a.status}`)).toEqual([
      'GET /workspaces/ws-1/participants/phonenumber/%2B16505551234/conversations 200',
      'POST /workspaces/ws-1/conversations 201',
      'POST /workspaces/ws-1/conversations/{id}/messages 201',
      'GET /workspaces/ws-1/participants/phonenumber/%2B16505551234/conversations 200',
      'POST /workspaces/ws-1/conversations/{id}/messages 201',
    ]);
    const [a, b] = bird.received();
    expect(a!.path).toBe(b!.path); // the second message went to the conversation the first created
    expect(a!.headers.authorization).toBe(`AccessKey ${ACCESS_KEY}`);
    expect(a!.idempotencyKey).toBe(first.key);
    expect(a!.body).toMatchObject({
      participantType: 'contact',
      participantId: expect.any(String),
      participantContactIdentifierKey: 'phonenumber',
      participantContactIdentifierValue: '+16505551234',
      reference: first.key,
      body: { type: 'text', text: { text: first.message!.text } },
    });
    expect(b!.body.reference).toBe(second.key);
  });

  it('posts images with their presigned URL and documents as files with contentType and filename', async () => {
    const { client } = clientWith();
    const image = fixtureEvent('message-image');
    const document = fixtureEvent('message-document');
    await client.deliver(deliveryOf(image, conversationsTarget(), mediaFor(image)));
    await client.deliver(deliveryOf(document, conversationsTarget(), mediaFor(document)));
    const [imageCall, documentCall] = bird.received();
    expect(imageCall!.body.body).toMatchObject({ type: 'image', image: { images: [{ mediaUrl: mediaFor(image).url }] } });
    expect(documentCall!.body.body).toEqual({
      type: 'file',
      file: { files: [{ mediaUrl: mediaFor(document).url, contentType: 'application/pdf', filename: 'receipt.pdf' }], text: 'my receipt' },
    });
  });

  it('accepts a status without calling Bird: there is nothing the contact said', async () => {
    const { client, requests } = clientWith();
    await client.deliver(deliveryOf(fixtureEvent('status-read'), conversationsTarget()));
    expect(bird.attempts()).toHaveLength(0);
    expect(await requests('conversations', 'skipped')).toBe(1);
  });

  it('retries a failed conversation lookup and still posts the message once', async () => {
    const { client } = clientWith();
    bird.failNext(1, { status: 500 });
    await client.deliver(deliveryOf(fixtureEvent('message-text'), conversationsTarget()));
    expect(bird.attempts().map((a) => `${a.method} ${a.status}`)).toEqual(['GET 500', 'GET 200', 'POST 201', 'POST 201']);
    expect(bird.received()).toHaveLength(1);
  });

  it('a wrong access key is a PermanentError', async () => {
    const { client } = clientWith();
    const error = await failureOf(client.deliver(deliveryOf(fixtureEvent('message-text'), conversationsTarget('nope'))));
    expect((error as PermanentError).reason).toBe('bird_rejected_401');
    expect(bird.attempts()).toHaveLength(1);
  });
});

describe('retries', () => {
  it('429 with Retry-After: 1, then 200 → delivered once, after waiting about a second', async () => {
    const { client } = clientWith();
    bird.failNext(1, { status: 429, retryAfter: 1 });
    const started = Date.now();
    await client.deliver(deliveryOf(fixtureEvent('message-text'), flowTarget()));
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(3000);
    expect(bird.attempts().map((a) => a.status)).toEqual([429, 202]);
    expect(bird.received()).toHaveLength(1);
  });

  it('a Retry-After longer than the in-process bound ends the delivery at once with retryAfterMs for the queue', async () => {
    const { client, requests } = clientWith({ retry: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 20, maxRetryAfterMs: 2000 } });
    bird.failNext(1, { status: 429, retryAfter: 120 });
    const started = Date.now();
    const error = await failureOf(client.deliver(deliveryOf(fixtureEvent('message-text'), flowTarget())));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(error).toBeInstanceOf(RetryableError);
    expect(error).toMatchObject({ reason: 'bird_rate_limited', retryAfterMs: 120_000 });
    expect(bird.attempts()).toHaveLength(1);
    expect(await requests('flow', 'rate_limited')).toBe(1);
  });

  it('400 → PermanentError after exactly one attempt', async () => {
    const { client } = clientWith();
    bird.failAlways({ status: 400 });
    const error = await failureOf(client.deliver(deliveryOf(fixtureEvent('message-text'), flowTarget())));
    expect(error).toBeInstanceOf(PermanentError);
    expect((error as PermanentError).reason).toBe('bird_rejected_400');
    expect(bird.attempts()).toHaveLength(1);
  });

  it('a 503 then success is retried and delivered', async () => {
    const { client } = clientWith();
    bird.failNext(2, { status: 503 });
    await client.deliver(deliveryOf(fixtureEvent('message-text'), flowTarget()));
    expect(bird.attempts().map((a) => a.status)).toEqual([503, 503, 202]);
  });

  it('a redirect is not followed with the secret: PermanentError', async () => {
    const { client } = clientWith();
    bird.failNext(1, { status: 302 });
    const error = await failureOf(client.deliver(deliveryOf(fixtureEvent('message-text'), flowTarget())));
    expect(error).toMatchObject({ reason: 'bird_rejected_302' });
    expect(bird.attempts()).toHaveLength(1);
  });

  it('network errors (nothing listening) are retried, then RetryableError', async () => {
    const { client, registry } = clientWith();
    const closed = await startBirdStandIn({ logger: silent });
    const target: BirdTarget = { transport: 'flow', flowUrl: closed.flowUrl(), flowSecret: 's' };
    await closed.stop();
    const error = await failureOf(client.deliver(deliveryOf(fixtureEvent('message-text'), target)));
    expect(error).toBeInstanceOf(RetryableError);
    expect(error).toMatchObject({ reason: 'bird_unavailable' });
    const attempts = (await registry.getSingleMetric('wa_ingress_bird_attempts_total')!.get()).values;
    expect(attempts.find((v) => v.labels.result === 'network')?.value).toBe(3);
  });

  it('a timed-out attempt is retried, and each attempt is cut at timeoutMs', async () => {
    const { client } = clientWith({ timeoutMs: 150 });
    bird.failNext(1, { delayMs: 1500 });
    const started = Date.now();
    await client.deliver(deliveryOf(fixtureEvent('message-text'), flowTarget()));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(bird.attempts().map((a) => a.status)).toEqual(['aborted', 202]);
    expect(bird.received()).toHaveLength(1);
  });

  it('a Bird that never answers in time costs at most maxAttempts × timeoutMs plus backoff', async () => {
    const { client } = clientWith({ timeoutMs: 100 });
    bird.failAlways({ delayMs: 1500 });
    const started = Date.now();
    const error = await failureOf(client.deliver(deliveryOf(fixtureEvent('message-text'), flowTarget())));
    const elapsed = Date.now() - started;
    expect(error).toMatchObject({ reason: 'bird_unavailable' });
    expect(elapsed).toBeGreaterThanOrEqual(300);
    expect(elapsed).toBeLessThan(900);
    expect(bird.attempts()).toHaveLength(3);
  });
});

describe('logs', () => {
  it('never carry the secret, the access key, the signature or the contact’s phone number', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'trace', destination: new Writable({ write: (chunk, _e, done) => (lines.push(String(chunk)), done()) }) });
    const { client } = clientWith({ logger });
    const event = fixtureEvent('message-text');
    await client.deliver(deliveryOf(event, flowTarget()));
    await failureOf(client.deliver(deliveryOf(event, flowTarget('wrong-secret-value'))));
    bird.failAlways({ status: 500 });
    await failureOf(client.deliver(deliveryOf(event, conversationsTarget())));
    const signature = bird.received()[0]!.headers['x-wa-ingress-signature-256'] as string;
    const text = lines.join('');
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const secret of [FLOW_SECRET, SIGNING_SECRET, 'wrong-secret-value', ACCESS_KEY, signature.slice(7), '16505551234']) expect(text).not.toContain(secret);
    expect(text).toContain(maskWamids(event.key)); // correlatable, yet the wamid (which encodes the number) is cut
    expect(text).not.toContain(event.key);
  });
});

describe('circuit breaker', () => {
  it('500 forever: RetryableError after maxAttempts, opens after N failed deliveries, then fails fast and recovers', async () => {
    const { client, requests } = clientWith({ breaker: { consecutiveFailures: 2, halfOpenAfterMs: 400 } });
    const changes: CircuitStateChange[] = [];
    client.onCircuitChange((change) => changes.push(change));
    bird.failAlways({ status: 500 });
    const delivery = deliveryOf(fixtureEvent('message-text'), flowTarget());

    const first = await failureOf(client.deliver(delivery));
    expect(first).toBeInstanceOf(RetryableError);
    expect((first as RetryableError).reason).toBe('bird_unavailable');
    expect(bird.attempts()).toHaveLength(3);
    expect(client.circuitOpen).toBe(false);

    await failureOf(client.deliver(delivery));
    expect(bird.attempts()).toHaveLength(6);
    expect(client.circuitOpen).toBe(true);
    expect(changes).toEqual([{ host: new URL(bird.url).host, state: 'open' }]);

    const started = Date.now();
    const fast = await failureOf(client.deliver(delivery));
    expect(Date.now() - started).toBeLessThan(50);
    expect(fast).toMatchObject({ reason: 'bird_circuit_open' });
    expect((fast as RetryableError).retryAfterMs).toBeGreaterThan(0);
    expect((fast as RetryableError).retryAfterMs).toBeLessThanOrEqual(400);
    expect(bird.attempts()).toHaveLength(6);
    expect(await requests('flow', 'circuit_open')).toBe(1);

    // Once the probe is due the worker may pull again; a healthy Bird closes the circuit.
    await new Promise((resolve) => setTimeout(resolve, client.circuitRetryAfterMs() + 20));
    expect(client.circuitOpen).toBe(false);
    bird.recover();
    await client.deliver(delivery);
    expect(changes.map((c) => c.state)).toEqual(['open', 'half-open', 'closed']);
    expect(client.circuitOpen).toBe(false);
  });

  it('reports the circuit open (pause the worker) only while every Bird host called has an open breaker', async () => {
    const other = await startBirdStandIn({ flowSecrets: { '/flows/demo': FLOW_SECRET }, flowSigningSecrets: { '/flows/demo': SIGNING_SECRET }, logger: silent });
    try {
      const { client } = clientWith({ retry: { maxAttempts: 1 }, breaker: { consecutiveFailures: 1, halfOpenAfterMs: 60_000 } });
      const healthyLine = deliveryOf(fixtureEvent('message-text'), { transport: 'flow', flowUrl: other.flowUrl('/flows/demo'), flowSecret: FLOW_SECRET, flowSigningSecret: SIGNING_SECRET });
      await client.deliver(healthyLine);
      bird.failAlways({ status: 500 });
      await failureOf(client.deliver(deliveryOf(fixtureEvent('message-text'), flowTarget())));
      expect(client.circuitRetryAfterMs()).toBeGreaterThan(0); // that line's host is open…
      expect(client.circuitOpen).toBe(false); // …but the other line's Bird is fine: keep pulling
      await client.deliver(healthyLine);
      other.failAlways({ status: 503 });
      await failureOf(client.deliver(healthyLine));
      expect(client.circuitOpen).toBe(true);
    } finally {
      await other.stop();
    }
  });

  it('rejections (4xx) say Bird is up: they never open the breaker', async () => {
    const { client } = clientWith({ breaker: { consecutiveFailures: 2, halfOpenAfterMs: 60_000 } });
    bird.failAlways({ status: 422 });
    for (let i = 0; i < 4; i++) await failureOf(client.deliver(deliveryOf(fixtureEvent('message-text'), flowTarget())));
    expect(client.circuitOpen).toBe(false);
    expect(bird.attempts()).toHaveLength(4);
  });
});
