import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Logger } from '../observability/logger';
import { CSRF_HEADER, SESSION_COOKIE, type ConsoleAuth, type Credential, type CredentialProblem } from './auth';

/** Where the console lives: the cookie is scoped to it. */
export const CONSOLE_PATH = '/console';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const PROBLEM_MESSAGES: Record<CredentialProblem, string> = {
  no_credential: 'No bearer token and no session cookie',
  wrong_token: 'The bearer token is not the console token',
  malformed_session: 'The session cookie is not a console session',
  invalid_session: 'The session cookie was not issued with the current console token',
  expired_session: 'The session has expired',
};

/** Set by `requireCredential` for the handlers after it. */
export function credentialOf(res: Response): Credential {
  return res.locals.credential as Credential;
}

/**
 * Every API request needs the bearer or a session (else 401); every state-changing one made with a
 * session also needs the session's CSRF token in `x-csrf-token` (else 403).
 */
export function requireCredential(auth: ConsoleAuth, logger: Logger) {
  return (req: Request, res: Response, next: NextFunction) => {
    const authentication = auth.authenticate(req.headers.authorization, req.headers.cookie);
    if (!authentication.ok) {
      const { problem } = authentication;
      // The page asks GET /session on load to learn whether to show the login: not worth a warning.
      const level = req.method === 'GET' && req.path === '/session' ? 'debug' : 'warn';
      logger[level]({ event: 'console_unauthorized', problem, method: req.method, path: req.path }, 'console request without valid credentials');
      res
        .status(401)
        .set('WWW-Authenticate', 'Bearer realm="wa-ingress console"')
        .json({ error: 'unauthorized', problem, message: `${PROBLEM_MESSAGES[problem]}: log in with the console token, or send Authorization: Bearer <CONSOLE_TOKEN>` });
      return;
    }
    const credential = authentication.credential;
    if (!SAFE_METHODS.has(req.method) && !auth.checkCsrf(credential, req.get(CSRF_HEADER))) {
      logger.warn({ event: 'console_csrf_refused', method: req.method, path: req.path }, 'console state change without a CSRF token');
      res.status(403).json({ error: 'csrf_required', field: CSRF_HEADER, message: `A state-changing request needs the session's CSRF token in the ${CSRF_HEADER} header` });
      return;
    }
    res.locals.credential = credential;
    next();
  };
}

function cookie(req: Request, value: string, maxAgeSeconds: number): string {
  // Secure when the browser came over HTTPS (directly, or through the ALB that terminates it).
  const secure = req.secure || req.get('x-forwarded-proto') === 'https';
  return `${SESSION_COOKIE}=${value}; Path=${CONSOLE_PATH}; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;
}

/**
 * POST /session {token}: log in (the cookie, and the CSRF token in the body). GET /session: the
 * CSRF token of the current session (the page asks on load). DELETE /session: log out.
 */
export function sessionRoutes(auth: ConsoleAuth, logger: Logger): Router {
  const router = express.Router();
  router.post('/session', express.json({ limit: '4kb' }), (req, res) => {
    const token = (req.body as { token?: unknown } | undefined)?.token;
    if (typeof token !== 'string' || token.length === 0) {
      res.status(400).json({ error: 'invalid_request', field: 'token', message: 'token: the console token is required' });
      return;
    }
    if (!auth.checkToken(token)) {
      logger.warn({ event: 'console_login_refused' }, 'console login with a wrong token');
      res.status(401).json({ error: 'unauthorized', message: 'That is not the console token' });
      return;
    }
    const session = auth.issueSession();
    res.set('Set-Cookie', cookie(req, session.value, session.maxAgeSeconds)).json({ csrf: session.csrf, expiresAt: new Date(session.expiresAt).toISOString() });
  });
  // A login body that is not JSON, or too large, is the client's error: a JSON 4xx, never a stack trace.
  router.use('/session', (error: unknown, _req: Request, res: Response, next: NextFunction) => {
    const status = (error as { status?: unknown }).status;
    if (typeof status !== 'number' || status < 400 || status >= 500) return next(error);
    res.status(status).json({ error: 'invalid_request', field: 'token', message: 'POST /session takes a JSON body {"token": "<CONSOLE_TOKEN>"}' });
  });
  router.get('/session', requireCredential(auth, logger), (_req, res) => {
    const credential = credentialOf(res);
    res.json(credential.via === 'session' ? { via: 'session', csrf: credential.csrf, expiresAt: new Date(credential.expiresAt).toISOString() } : { via: 'bearer' });
  });
  router.delete('/session', requireCredential(auth, logger), (req, res) => {
    res.set('Set-Cookie', cookie(req, '', 0)).status(204).end();
  });
  return router;
}
