import fc from 'fast-check';
import { sign } from '../../src/ingress/signature';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { APP_SECRET, startIngressHarness, type IngressHarness } from '../support/ingress';

let aws: AwsHarness;
let gw: IngressHarness;

beforeAll(async () => {
  aws = await startAwsHarness();
  gw = await startIngressHarness(aws);
});
afterAll(async () => {
  await gw.stop();
  await aws.stop();
});

const bodyArb = fc.oneof(
  fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)),
  fc.json().map((j) => Buffer.from(j)),
  fc
    .record({ object: fc.oneof(fc.constant('whatsapp_business_account'), fc.string()), entry: fc.array(fc.anything(), { maxLength: 3 }) })
    .map((o) => Buffer.from(JSON.stringify(o))),
  fc.string({ unit: 'binary', maxLength: 256 }).map((s) => Buffer.from(s, 'utf8')),
);

const signatureArb = fc.oneof(
  fc.constant('valid'),
  fc.constant('absent'),
  fc.string({ maxLength: 80 }),
  fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256=${h}`),
);

const headerValueArb = fc.stringMatching(/^[\x20-\x7e]{0,40}$/);

describe('fuzz: random bodies, headers and content types', () => {
  it('never answer 5xx (but the dependency 503), never crash, never enqueue anything unsigned', async () => {
    const signedBodies = new Set<string>();
    await fc.assert(
      fc.asyncProperty(
        bodyArb,
        signatureArb,
        fc.option(headerValueArb),
        fc.dictionary(fc.stringMatching(/^x-[a-z]{1,10}$/), headerValueArb, { maxKeys: 3 }),
        fc.constantFrom('/webhooks/whatsapp', '/webhooks/whatsapp/', '/webhooks/whatsapp/line%20x', '/webhooks/whatsapp?hub.mode=subscribe'),
        async (body, signature, contentType, extraHeaders, path) => {
          const headers: Record<string, string> = { ...extraHeaders };
          if (contentType !== null) headers['content-type'] = contentType;
          if (signature === 'valid') {
            headers['x-hub-signature-256'] = sign(APP_SECRET, body);
            signedBodies.add(body.toString('latin1'));
          } else if (signature !== 'absent') {
            headers['x-hub-signature-256'] = signature;
          }
          const res = await fetch(`${gw.url}${path}`, { method: 'POST', body, headers });
          const text = await res.text();
          expect(res.status < 500 || res.status === 503).toBe(true);
          if (res.status >= 400) expect(() => JSON.parse(text)).not.toThrow();
          if (signature !== 'valid') expect([401, 404, 413, 415, 400]).toContain(res.status);
        },
      ),
      { numRuns: 300 },
    );
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
    const messages = await aws.drainQueue();
    for (const m of messages) expect(signedBodies.has(Buffer.from(m.Body!, 'utf8').toString('latin1'))).toBe(true);
  });
});
