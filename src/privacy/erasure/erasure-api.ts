import express, { type NextFunction, type Request, type Response } from 'express';
import type { LineRegistry } from '../../lines/registry';
import type { SecretResolver } from '../../lines/secrets';
import type { Logger } from '../../observability/logger';
import { failV1, lineKeyAuthentication, type LineKeyLocals } from '../../outbound/line-key-auth';
import { erasureContactSchema } from './erasure';
import type { ErasureService } from './erasure-service';

const RETRY_AFTER_SECONDS = '5';

/**
 * `DELETE /v1/lines/:lineId/contacts/:contact` (202 `{id, status: "queued"}` once the erasure is
 * recorded) and `GET /v1/lines/:lineId/erasures/:id`, behind the line's outbound keys like the send
 * API. Mounted on the ingress listener.
 */
export function createErasureRouter(deps: { lines: LineRegistry; secrets: SecretResolver; erasures: ErasureService; logger: Logger }): express.Router {
  const router = express.Router();
  const authenticate = lineKeyAuthentication({ lines: deps.lines, secrets: deps.secrets, logger: deps.logger, event: 'erasure_api_unauthorized' });
  const asyncRoute = (handler: (req: Request, res: Response, next: NextFunction) => Promise<unknown>) => (req: Request, res: Response, next: NextFunction) =>
    handler(req, res, next).catch(next);

  /** A lookup that failed (the lines table, a secret, the erasures table): retry later. */
  const unavailable = (error: Error, _req: Request, res: Response, _next: NextFunction) => {
    deps.logger.error({ err: error }, 'erasure API request failed');
    res.setHeader('Retry-After', RETRY_AFTER_SECONDS);
    failV1(res, 503, 'dependency_unavailable', 'A dependency failed; retry later');
  };

  router.delete(
    '/v1/lines/:lineId/contacts/:contact',
    asyncRoute(authenticate),
    asyncRoute(async (req, res) => {
      const line = (res.locals as LineKeyLocals).line!;
      const contact = erasureContactSchema.safeParse(req.params.contact);
      if (!contact.success) {
        const message = contact.error.issues[0]?.message ?? 'invalid';
        return failV1(res, 400, 'invalid_contact', `contact: ${message}`, { field: 'contact', issues: [{ path: 'contact', message }] });
      }
      try {
        const { view } = await deps.erasures.request(line, contact.data, 'api');
        res.status(202).json({ id: view.id, status: view.status });
      } catch (error) {
        deps.logger.error({ err: error, lineId: line.lineId, event: 'erasure_not_recorded' }, 'erasure not recorded; answering 503');
        res.setHeader('Retry-After', RETRY_AFTER_SECONDS);
        failV1(res, 503, 'erasure_unavailable', 'The erasure could not be recorded; retry (a repeated request is safe)');
      }
    }),
    unavailable,
  );

  router.get(
    '/v1/lines/:lineId/erasures/:id',
    asyncRoute(authenticate),
    asyncRoute(async (req, res) => {
      const line = (res.locals as LineKeyLocals).line!;
      const view = await deps.erasures.view(line.lineId, req.params.id ?? '');
      if (!view) return failV1(res, 404, 'not_found', 'No erasure with this id on this line');
      res.json(view);
    }),
    unavailable,
  );

  return router;
}
