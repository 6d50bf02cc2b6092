import express, { type Router } from 'express';
import { z } from 'zod';
import type { Logger } from '../observability/logger';
import { erasureContactSchema } from '../privacy/erasure/erasure';
import type { ErasureService } from '../privacy/erasure/erasure-service';
import { handler, parseQuery, type LineSource } from './journal-routes';
import type { ErasureAccepted, ErasureView } from './ui/contract';

const requestBody = z.object({ lineId: z.string().min(1).max(64), contact: erasureContactSchema });
const viewQuery = z.object({ lineId: z.string().min(1).max(64) });

/**
 * The console's erasure: `POST erasures {lineId, contact}` (the page asks for a confirmation first;
 * the session's CSRF token is required like every state change) → 202 `{id, status}`, and
 * `GET erasures/:id?lineId=` → the progress and, once done, the counts. The same job as the API's.
 */
export function erasureRoutes(options: { erasures: ErasureService; lines: LineSource; logger: Logger }): Router {
  const { logger } = options;
  const router = express.Router();

  router.post(
    '/erasures',
    express.json({ limit: '4kb' }),
    handler(logger, async (req, res) => {
      const body = parseQuery(requestBody, req.body);
      const line = (await options.lines.list()).find((l) => l.lineId === body.lineId);
      if (!line) return void res.status(404).json({ error: 'not_found', field: 'lineId', message: 'No such line' });
      try {
        const { view } = await options.erasures.request(line, body.contact, 'console');
        res.status(202).json({ id: view.id, status: view.status } satisfies ErasureAccepted);
      } catch (error) {
        logger.error({ err: error, lineId: line.lineId, event: 'erasure_not_recorded' }, 'erasure not recorded');
        res.setHeader('Retry-After', '5');
        res.status(503).json({ error: 'erasure_unavailable', message: 'The erasure could not be recorded; try again' });
      }
    }),
  );

  router.get(
    '/erasures/:id',
    handler(logger, async (req, res) => {
      const query = parseQuery(viewQuery, req.query);
      const view = await options.erasures.view(query.lineId, req.params.id ?? '');
      if (!view) return void res.status(404).json({ error: 'not_found', field: 'id', message: 'No erasure with this id on this line' });
      res.json(view satisfies ErasureView);
    }),
  );
  return router;
}
