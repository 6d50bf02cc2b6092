import express, { type Router } from 'express';
import { z } from 'zod';
import type { JournalBus } from '../journal/journal-bus';
import type { Logger } from '../observability/logger';
import { handler, parseQuery } from './journal-routes';

const streamQuery = z.object({ lineId: z.string().min(1).max(128).optional() });

/**
 * GET stream?lineId=: Server-Sent Events. One `event: journal` per journey step, data
 * {handle, lineId, step, at} (an event's handle, or a reply's outbound id: never an event key); a comment heartbeat every `heartbeatMs` (15 s) so load balancers keep
 * the stream open. The steps come from the process's JournalBus: fed by the worker's journal writes
 * when the worker runs here, else by an IndexTail polling the line+time index.
 */
export function streamRoutes(options: { bus: JournalBus; heartbeatMs?: number; onSubscribe?: () => () => void; logger: Logger }): Router {
  const router = express.Router();
  router.get(
    '/stream',
    handler(options.logger, async (req, res) => {
      const query = parseQuery(streamQuery, req.query);
      res.status(200).set({
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache, no-transform',
        Connection: 'keep-alive',
        'X-Accel-Buffering': 'no',
      });
      res.flushHeaders();
      res.write('retry: 2000\n: connected\n\n');
      const unsubscribe = options.bus.subscribe(query.lineId, (notice) => {
        res.write(`event: journal\ndata: ${JSON.stringify({ handle: notice.handle, lineId: notice.lineId, step: notice.step, at: notice.at })}\n\n`);
      });
      const release = options.onSubscribe?.();
      const heartbeat = setInterval(() => res.write(`: heartbeat ${new Date().toISOString()}\n\n`), options.heartbeatMs ?? 15_000);
      req.on('close', () => {
        clearInterval(heartbeat);
        unsubscribe();
        release?.();
      });
    }),
  );
  return router;
}
