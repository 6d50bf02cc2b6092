import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { escapeNonAscii, sign, tokensEqual, verifySignature } from '../../src/ingress/signature';
import { FIXTURES_DIR } from '../support/fixtures';

interface Vector {
  name: string;
  body_file?: string;
  body_utf8?: string;
  body_escaped_ascii?: string;
  body_decoded_text?: string;
  app_secret: string;
  x_hub_signature_256: string;
  expect_valid?: boolean;
  expect_valid_over?: string;
}

const vectors = (JSON.parse(readFileSync(join(FIXTURES_DIR, 'signature-vectors.json'), 'utf8')) as { vectors: Vector[] }).vectors;

describe('X-Hub-Signature-256 verification', () => {
  it.each(vectors.map((v) => [v.name, v] as const))('published vector %s', (_name, v) => {
    const body = v.body_file ? readFileSync(join(FIXTURES_DIR, v.body_file)) : Buffer.from(v.body_utf8!, 'utf8');
    const valid = v.expect_valid ?? v.expect_valid_over !== undefined;
    expect(verifySignature(body, v.x_hub_signature_256, [v.app_secret]).ok).toBe(valid);
  });

  it('accepts the decoded UTF-8 form of a body Meta signed in its escaped form', () => {
    const v = vectors.find((x) => x.name === 'whatsapp-api-js-unicode-escaped')!;
    const utf8 = Buffer.from(v.body_decoded_text!, 'utf8');
    expect(verifySignature(utf8, v.x_hub_signature_256, [v.app_secret])).toEqual({ ok: true });
    expect(escapeNonAscii(v.body_decoded_text!)).toBe(v.body_escaped_ascii);
  });

  it('escapes astral characters as lowercase UTF-16 surrogate pairs, as JSON does', () => {
    expect(escapeNonAscii('a😀é')).toBe('a\\ud83d\\ude00\\u00e9');
  });

  it.each([
    ['missing', undefined, 'missing'],
    ['empty', '', 'missing'],
    ['wrong prefix', `sha1=${'a'.repeat(64)}`, 'malformed'],
    ['short', `sha256=${'a'.repeat(63)}`, 'malformed'],
    ['long', `sha256=${'a'.repeat(65)}`, 'malformed'],
    ['not hex', `sha256=${'z'.repeat(64)}`, 'malformed'],
    ['wrong secret', sign('other', '{}'), 'mismatch'],
  ])('refuses a %s header', (_name, header, reason) => {
    expect(verifySignature(Buffer.from('{}'), header, ['secret'])).toEqual({ ok: false, reason });
  });

  it('accepts any of several secrets (rotation) and refuses when none is configured', () => {
    const body = Buffer.from('{"entry":[]}');
    expect(verifySignature(body, sign('new', body), ['old', 'new']).ok).toBe(true);
    expect(verifySignature(body, sign('old', body), ['old', 'new']).ok).toBe(true);
    expect(verifySignature(body, sign('old', body), [])).toEqual({ ok: false, reason: 'no_secret' });
  });

  it('accepts an uppercase hex signature (hex is case-insensitive)', () => {
    const body = Buffer.from('x');
    expect(verifySignature(body, sign('s', body).toUpperCase().replace('SHA256=', 'sha256='), ['s']).ok).toBe(true);
  });

  it('compares verify tokens exactly', () => {
    expect(tokensEqual('abc', 'abc')).toBe(true);
    expect(tokensEqual('abc', 'abd')).toBe(false);
    expect(tokensEqual('abc', 'abcd')).toBe(false);
  });
});
