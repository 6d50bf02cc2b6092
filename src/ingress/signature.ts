import { createHmac, timingSafeEqual } from 'node:crypto';

export type SignatureRejection = 'missing' | 'malformed' | 'mismatch' | 'no_secret';
export type SignatureCheck = { ok: true } | { ok: false; reason: SignatureRejection };

const HEADER_PATTERN = /^sha256=([0-9a-fA-F]{64})$/;

/**
 * Meta signs the payload with non-ASCII characters written as lowercase `\uXXXX` escapes.
 * Bodies that arrive as raw UTF-8 are re-escaped to that form (JSON's UTF-16 code units, so
 * astral characters become surrogate pairs) and checked as well.
 */
export function escapeNonAscii(body: string): string {
  return body.replace(/[\u0080-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function hasNonAscii(raw: Buffer): boolean {
  for (let i = 0; i < raw.length; i++) if (raw[i]! >= 0x80) return true;
  return false;
}

export function sign(secret: string, body: Buffer | string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * Verify `X-Hub-Signature-256` over the raw bytes against every valid secret (rotation, several
 * Meta apps), in constant time per comparison. Never parses the body.
 */
export function verifySignature(raw: Buffer, header: string | undefined, secrets: readonly string[]): SignatureCheck {
  if (header === undefined || header.length === 0) return { ok: false, reason: 'missing' };
  const match = HEADER_PATTERN.exec(header.trim());
  if (!match) return { ok: false, reason: 'malformed' };
  if (secrets.length === 0) return { ok: false, reason: 'no_secret' };
  const expected = Buffer.from(match[1]!.toLowerCase(), 'hex');
  const forms: Array<Buffer | string> = [raw];
  if (hasNonAscii(raw)) forms.push(escapeNonAscii(raw.toString('utf8')));
  let ok = false;
  for (const secret of secrets) {
    for (const form of forms) {
      const actual = createHmac('sha256', secret).update(form).digest();
      // Accumulate instead of returning early so timing does not reveal which secret matched.
      ok = timingSafeEqual(actual, expected) || ok;
    }
  }
  return ok ? { ok: true } : { ok: false, reason: 'mismatch' };
}

/** Constant-time comparison of the GET verify token (length is not secret). */
export function tokensEqual(given: string, expected: string): boolean {
  const a = Buffer.from(given, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  if (a.length !== b.length) {
    timingSafeEqual(b, b);
    return false;
  }
  return timingSafeEqual(a, b);
}
