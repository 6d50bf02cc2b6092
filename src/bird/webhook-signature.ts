import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Bird's webhook signature, as docs.bird.com documents it ("Verifying a webhook subscription",
 * /api/notifications-api/api-reference/webhooks/verifying-a-webhook):
 *   messagebird-signature = base64( HMAC-SHA256( signingKey,
 *       messagebird-request-timestamp + "\n" + requested URL + "\n" + SHA-256(raw body) ) )
 * The body digest is the raw 32 bytes, not hex. The URL is the one Bird called (scheme, host,
 * path and query), so behind a load balancer it is rebuilt from PUBLIC_BASE_URL, never from
 * X-Forwarded-* headers a caller can set.
 */
export const BIRD_SIGNATURE_HEADER = 'messagebird-signature';
export const BIRD_TIMESTAMP_HEADER = 'messagebird-request-timestamp';

/** Bird's timestamps are whole seconds; more than this away from our clock is refused. */
export const BIRD_SIGNATURE_TOLERANCE_MS = 5 * 60_000;

export type BirdSignatureRejection = 'missing' | 'malformed' | 'stale' | 'mismatch';
export type BirdSignatureCheck = { ok: true } | { ok: false; reason: BirdSignatureRejection };

export interface BirdSignedRequest {
  signature: string | undefined;
  timestamp: string | undefined;
  /** The public URL Bird called, query included. */
  url: string;
  rawBody: Buffer;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export function birdSignaturePayload(timestamp: string, url: string, rawBody: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${timestamp}\n${url}\n`, 'utf8'), createHash('sha256').update(rawBody).digest()]);
}

export function verifyBirdSignature(
  request: BirdSignedRequest,
  signingKey: string,
  options: { nowMs?: number; toleranceMs?: number } = {},
): BirdSignatureCheck {
  const { signature, timestamp } = request;
  if (!signature || !timestamp) return { ok: false, reason: 'missing' };
  if (!/^[0-9]{1,12}$/.test(timestamp) || !BASE64.test(signature)) return { ok: false, reason: 'malformed' };
  const given = Buffer.from(signature, 'base64');
  if (given.length !== 32) return { ok: false, reason: 'malformed' };
  const skewMs = Math.abs((options.nowMs ?? Date.now()) - Number(timestamp) * 1000);
  if (skewMs > (options.toleranceMs ?? BIRD_SIGNATURE_TOLERANCE_MS)) return { ok: false, reason: 'stale' };
  const expected = createHmac('sha256', signingKey).update(birdSignaturePayload(timestamp, request.url, request.rawBody)).digest();
  return timingSafeEqual(expected, given) ? { ok: true } : { ok: false, reason: 'mismatch' };
}

/**
 * The URL Bird signed: PUBLIC_BASE_URL (scheme, host, optional path prefix) + the path and query
 * as they reached us. Without PUBLIC_BASE_URL only the socket's own view is used (plain http to
 * the Host header), which is right for a direct local call and wrong behind TLS termination.
 */
export function publicRequestUrl(publicBaseUrl: string | undefined, originalUrl: string, host: string | undefined): string {
  if (publicBaseUrl) return `${publicBaseUrl.replace(/\/+$/, '')}${originalUrl}`;
  return `http://${host ?? 'localhost'}${originalUrl}`;
}
