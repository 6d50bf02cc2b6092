import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { PermanentError } from '../errors';
import { tokensEqual } from '../ingress/signature';
import { lineSchema, type Line } from '../lines/line';
import type { LineRegistry } from '../lines/registry';
import type { SecretResolver } from '../lines/secrets';
import type { Logger } from '../observability/logger';

/** Compared against when a line has no key, so an unknown line costs the same as a wrong key. */
const NO_KEY = randomUUID();

export type LineKeyLocals = { requestId?: string; log?: Logger; line?: Line };

/** The `/v1` APIs' error body: `{error, message, …extra, requestId}`. */
export function failV1(res: Response, status: number, error: string, message: string, extra: Record<string, unknown> = {}): void {
  res.status(status).json({ error, message, ...extra, requestId: (res.locals as LineKeyLocals).requestId });
}

/**
 * The `/v1/lines/:lineId/…` APIs' authentication: `Authorization: Bearer <key>`, compared in
 * constant time with each of the line's `outboundKeys`. One 401 for an unknown line, an inactive
 * one, a missing key and a wrong key. On success the line is on `res.locals.line`.
 */
export function lineKeyAuthentication(deps: { lines: LineRegistry; secrets: SecretResolver; logger: Logger; event: string }) {
  const resolveKeys = async (line: Line): Promise<string[]> => {
    const keys: string[] = [];
    for (const ref of line.outboundKeys ?? []) {
      try {
        keys.push(await deps.secrets.resolve(ref));
      } catch (error) {
        // A key that cannot resolve for good (env var unset) is skipped: the line's other keys still work.
        if (!(error instanceof PermanentError)) throw error;
        deps.logger.warn({ lineId: line.lineId, reason: error.reason }, 'a send API key of the line cannot be resolved');
      }
    }
    return keys;
  };

  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const lineId = req.params.lineId ?? '';
    const given = /^Bearer ([^\s]+)$/.exec(req.get('authorization') ?? '')?.[1] ?? '';
    const line = lineSchema.shape.lineId.safeParse(lineId).success ? await deps.lines.byId(lineId) : undefined;
    const keys = line?.active ? await resolveKeys(line) : [];
    let ok = false;
    // Every key is compared (no early exit), so timing tells nothing about which one matched.
    for (const key of keys.length > 0 ? keys : [NO_KEY]) ok = tokensEqual(given, key) || ok;
    if (!ok || keys.length === 0 || given === '') {
      ((res.locals as LineKeyLocals).log ?? deps.logger).warn({ event: deps.event, lineId: lineId.slice(0, 64), keyGiven: given !== '' }, 'request refused: unknown line or wrong key');
      res.setHeader('WWW-Authenticate', 'Bearer');
      return failV1(res, 401, 'unauthorized', 'Unknown line or wrong key');
    }
    (res.locals as LineKeyLocals).line = line;
    next();
  };
}
