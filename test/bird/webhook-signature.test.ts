import { createHash, createHmac } from 'node:crypto';
import { publicRequestUrl, verifyBirdSignature } from '../../src/bird/webhook-signature';
import { signBirdWebhook } from '../../src/local/bird-standin';

const KEY = 'secureSigningKey';
const URL_CALLED = 'https://domain.com/bird/webhooks/line-a';
const BODY = Buffer.from('{"service":"conversations","event":"conversation.updated","payload":{"id":"c1"}}');
const NOW_S = 1_719_823_259;
const NOW_MS = NOW_S * 1000;

/** The recipe as Bird's docs write it (PHP example): hash_hmac over "%s\n%s\n%s" with the raw (binary) body hash. */
function docRecipe(key: string, timestamp: string, url: string, body: Buffer): string {
  const bodyHash = createHash('sha256').update(body).digest();
  return createHmac('sha256', key)
    .update(Buffer.concat([Buffer.from(`${timestamp}\n${url}\n`), bodyHash]))
    .digest('base64');
}

describe('Bird webhook signature', () => {
  const good = docRecipe(KEY, String(NOW_S), URL_CALLED, BODY);

  it('the stand-in signs exactly as the documented recipe', () => {
    expect(signBirdWebhook(KEY, String(NOW_S), URL_CALLED, BODY)).toBe(good);
  });

  it.each([
    ['a good signature', { signature: good }, { ok: true }],
    ['a signature under another key', { signature: docRecipe('other-key', String(NOW_S), URL_CALLED, BODY) }, { ok: false, reason: 'mismatch' }],
    ['a signature over another body', { rawBody: Buffer.from(`${BODY.toString()} `) }, { ok: false, reason: 'mismatch' }],
    ['a signature for another URL', { url: 'http://domain.com/bird/webhooks/line-a' }, { ok: false, reason: 'mismatch' }],
    ['the hex digest instead of the raw bytes in the payload', {
      signature: createHmac('sha256', KEY).update(`${NOW_S}\n${URL_CALLED}\n${createHash('sha256').update(BODY).digest('hex')}`).digest('base64'),
    }, { ok: false, reason: 'mismatch' }],
    ['no signature', { signature: undefined }, { ok: false, reason: 'missing' }],
    ['no timestamp', { timestamp: undefined }, { ok: false, reason: 'missing' }],
    ['a signature that is not base64', { signature: 'not base64!' }, { ok: false, reason: 'malformed' }],
    ['a signature of the wrong length', { signature: Buffer.from('short').toString('base64') }, { ok: false, reason: 'malformed' }],
    ['a timestamp that is not seconds', { timestamp: '2024-07-01T08:40:59Z' }, { ok: false, reason: 'malformed' }],
  ])('%s', (_name, change, expected) => {
    const request = { signature: good as string | undefined, timestamp: String(NOW_S) as string | undefined, url: URL_CALLED, rawBody: BODY, ...change };
    expect(verifyBirdSignature(request, KEY, { nowMs: NOW_MS })).toEqual(expected);
  });

  it.each([
    ['5 minutes old', -300, true],
    ['5 minutes and 1 second old', -301, false],
    ['5 minutes ahead', 300, true],
    ['5 minutes and 1 second ahead', 301, false],
    ['an hour old (a replay)', -3600, false],
  ])('a timestamp %s: accepted=%s', (_name, offsetSeconds, accepted) => {
    const timestamp = String(NOW_S + offsetSeconds);
    const signature = docRecipe(KEY, timestamp, URL_CALLED, BODY);
    const check = verifyBirdSignature({ signature, timestamp, url: URL_CALLED, rawBody: BODY }, KEY, { nowMs: NOW_MS });
    expect(check).toEqual(accepted ? { ok: true } : { ok: false, reason: 'stale' });
  });

  it('a wider window (BIRD_WEBHOOK_MAX_SKEW_SECONDS) accepts an older timestamp, still not an older one than it', () => {
    const timestamp = String(NOW_S - 3600);
    const signature = docRecipe(KEY, timestamp, URL_CALLED, BODY);
    const request = { signature, timestamp, url: URL_CALLED, rawBody: BODY };
    expect(verifyBirdSignature(request, KEY, { nowMs: NOW_MS, toleranceMs: 3600_000 })).toEqual({ ok: true });
    expect(verifyBirdSignature(request, KEY, { nowMs: NOW_MS, toleranceMs: 3599_000 })).toEqual({ ok: false, reason: 'stale' });
  });

  it.each([
    ['PUBLIC_BASE_URL wins over the socket view', 'https://wa.example.com', '/bird/webhooks/a?x=1', 'internal:8080', 'https://wa.example.com/bird/webhooks/a?x=1'],
    ['a trailing slash on PUBLIC_BASE_URL is dropped', 'https://wa.example.com/', '/bird/webhooks/a', 'internal:8080', 'https://wa.example.com/bird/webhooks/a'],
    ['without PUBLIC_BASE_URL: plain http to the Host header', undefined, '/bird/webhooks/a', '127.0.0.1:8080', 'http://127.0.0.1:8080/bird/webhooks/a'],
  ])('the signed URL: %s', (_name, base, originalUrl, host, expected) => {
    expect(publicRequestUrl(base, originalUrl, host)).toBe(expected);
  });
});
