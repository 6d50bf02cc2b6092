import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** The page's session cookie: HttpOnly, SameSite=Strict, scoped to the console's path. */
export const SESSION_COOKIE = 'wa_console_session';
export const CSRF_HEADER = 'x-csrf-token';

export type Credential = { via: 'bearer' } | { via: 'session'; csrf: string; expiresAt: number };

/** Why a request has no credential: said in the 401, so the page or the client knows what to fix. */
export type CredentialProblem = 'no_credential' | 'wrong_token' | 'malformed_session' | 'invalid_session' | 'expired_session';
export type Authentication = { ok: true; credential: Credential } | { ok: false; problem: CredentialProblem };

/**
 * Who may use the console: the holder of CONSOLE_TOKEN, as a Bearer header (API clients) or as a
 * session cookie the page got by logging in with the token. Sessions are stateless (an HMAC keyed
 * by the token), so every process with the same token accepts them and rotating the token ends
 * them all. The CSRF token is derived from the session: nothing to store.
 */
export class ConsoleAuth {
  private readonly tokenDigest: Buffer;
  private readonly key: Buffer;
  private readonly sessionMs: number;
  private readonly clock: () => number;

  constructor(options: { token: string; sessionHours: number; clock?: () => number }) {
    this.tokenDigest = digest(options.token);
    this.key = createHmac('sha256', options.token).update('wa-ingress console session v1').digest();
    this.sessionMs = options.sessionHours * 3_600_000;
    this.clock = options.clock ?? Date.now;
  }

  /** Constant time over fixed-length digests, so neither the token nor its length leaks. */
  checkToken(candidate: unknown): boolean {
    return typeof candidate === 'string' && candidate.length > 0 && timingSafeEqual(digest(candidate), this.tokenDigest);
  }

  /** `Authorization: Bearer <token>`, else the session cookie; never throws, whatever the client sent. */
  authenticate(authorization: string | undefined, cookieHeader: string | undefined): Authentication {
    const bearer = /^Bearer\s+(.+)$/i.exec(authorization ?? '')?.[1]?.trim();
    if (bearer !== undefined) return this.checkToken(bearer) ? { ok: true, credential: { via: 'bearer' } } : { ok: false, problem: 'wrong_token' };
    const session = readCookie(cookieHeader, SESSION_COOKIE);
    return session === undefined ? { ok: false, problem: 'no_credential' } : this.verifySession(session);
  }

  issueSession(): { value: string; csrf: string; expiresAt: number; maxAgeSeconds: number } {
    const expiresAt = this.clock() + this.sessionMs;
    const nonce = randomBytes(18).toString('base64url');
    const body = `v1.${Math.floor(expiresAt / 1000)}.${nonce}`;
    return { value: `${body}.${this.mac(body)}`, csrf: this.csrf(nonce), expiresAt, maxAgeSeconds: Math.floor(this.sessionMs / 1000) };
  }

  verifySession(value: string): Authentication {
    const parts = value.split('.');
    if (parts.length !== 4 || parts[0] !== 'v1') return { ok: false, problem: 'malformed_session' };
    const body = parts.slice(0, 3).join('.');
    const expected = Buffer.from(this.mac(body));
    const given = Buffer.from(parts[3]!);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, problem: 'invalid_session' };
    const expiresAt = Number(parts[1]) * 1000;
    if (!(expiresAt > this.clock())) return { ok: false, problem: 'expired_session' };
    return { ok: true, credential: { via: 'session', csrf: this.csrf(parts[2]!), expiresAt } };
  }

  /** A state-changing request: the bearer needs nothing more, a session needs its CSRF token in the header. */
  checkCsrf(credential: Credential, header: string | undefined): boolean {
    if (credential.via === 'bearer') return true;
    if (!header) return false;
    const given = Buffer.from(header);
    const expected = Buffer.from(credential.csrf);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  private mac(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }

  private csrf(nonce: string): string {
    return createHmac('sha256', this.key).update(`csrf.${nonce}`).digest('base64url');
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodedOrAsSent(part.slice(eq + 1).trim());
  }
  return undefined;
}

/** A broken %-escape (`%E0%A4`) is the client's error, not ours: kept as sent, it simply never verifies. */
function decodedOrAsSent(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
