import express, { type Router } from 'express';
import { z } from 'zod';
import { OUTBOUND_STATUS_FILTERS, type OutboundJournal } from '../journal/outbound-journal';
import type { Logger } from '../observability/logger';
import { handler, parseQuery, type LineSource } from './journal-routes';

const outboundQuery = z.object({
  lineId: z.string().min(1).max(128).optional(),
  to: z.string().min(3).max(64).optional(),
  status: z.enum(OUTBOUND_STATUS_FILTERS).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(8192).optional(),
});

/** GET outbound (replies, newest first) and GET outbound/:id (with its journey). */
export function outboundRoutes(options: { outbound: OutboundJournal; lines: LineSource; logger: Logger }): Router {
  const router = express.Router();
  router.get(
    '/outbound',
    handler(options.logger, async (req, res) => {
      const query = parseQuery(outboundQuery, req.query);
      const lineIds = query.lineId ? [] : (await options.lines.list()).map((l) => l.lineId);
      res.json(await options.outbound.list(query, lineIds));
    }),
  );
  router.get(
    '/outbound/:id',
    handler(options.logger, async (req, res) => {
      const detail = await options.outbound.get(req.params.id!);
      if (!detail) return void res.status(404).json({ error: 'not_found', field: 'id', message: 'No outbound message with this id (or past its retention)' });
      res.json(detail);
    }),
  );
  return router;
}
