import express, { type Router } from 'express';
import { z } from 'zod';
import type { Logger } from '../observability/logger';
import { looksLikeOutboundId } from '../outbound/record';
import { eventHandle } from '../privacy/pseudonyms';
import type { DeadLetterQueue, DlqEntry, RedriveResult } from '../queue/dlq';
import { handler, offsetPage, parseQuery } from './journal-routes';
import type { DlqSummary } from './ui/contract';

export type QueueName = 'inbound' | 'outbound';

export interface DlqRoutesOptions {
  /** The DLQs the console may show; a queue not given answers 404. */
  queues: Partial<Record<QueueName, DeadLetterQueue>>;
  logger: Logger;
}

const queueParam = z.enum(['inbound', 'outbound']).default('inbound');
const listQuery = z.object({
  queue: queueParam,
  reason: z.string().min(1).max(64).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(64).optional(),
});
const bulkQuery = z.object({ queue: queueParam, reason: z.string().min(1).max(64).optional() });

/** An inbound event by its handle; a reply by its outbound id, which is opaque already. */
function shownName(eventKey: string): string {
  return looksLikeOutboundId(eventKey) ? eventKey : eventHandle(eventKey);
}

/** What the page may see of a DLQ message: never the body (message text, phone numbers), nor the event key (it carries a wamid): its handle. */
function listed(entry: DlqEntry): DlqSummary {
  return {
    id: entry.id,
    reason: entry.reason,
    handle: entry.eventKey ? shownName(entry.eventKey) : null,
    lineId: entry.lineId ?? null,
    receivedAt: entry.receivedAt ?? null,
    parkedAt: entry.parkedAt ?? null,
    receiveCount: entry.receiveCount,
    bodyBytes: entry.bodyBytes,
  };
}

/** GET dlq, POST dlq/:id/redrive, POST dlq/redrive (all, or by reason), POST dlq/purge. */
export function dlqRoutes(options: DlqRoutesOptions): Router {
  const { logger } = options;
  const router = express.Router();
  const queueOf = (name: QueueName) => options.queues[name];
  const missing = { error: 'not_found', field: 'queue', message: 'This process has no such DLQ configured' };

  router.get(
    '/dlq',
    handler(logger, async (req, res) => {
      const query = parseQuery(listQuery, req.query);
      const dlq = queueOf(query.queue);
      if (!dlq) return void res.status(404).json(missing);
      const entries = (await dlq.list()).filter((e) => !query.reason || e.reason === query.reason);
      const reasons = [...new Set(entries.map((e) => e.reason))].sort();
      res.json({ ...offsetPage(entries.map(listed), query), reasons, total: entries.length });
    }),
  );

  router.post(
    '/dlq/redrive',
    handler(logger, async (req, res) => {
      const query = parseQuery(bulkQuery, req.query);
      const dlq = queueOf(query.queue);
      if (!dlq) return void res.status(404).json(missing);
      const entries = await dlq.list();
      let result: RedriveResult;
      if (!query.reason) result = await dlq.redrive({ all: true });
      else {
        // One id at a time: the DLQ tool redrives by id or all; a reason picks ids from the listing.
        result = { redriven: [], notDeleted: [], failed: [] };
        for (const entry of entries.filter((e) => e.reason === query.reason)) {
          const one = await dlq.redrive({ id: entry.id });
          result.redriven.push(...one.redriven);
          result.notDeleted.push(...one.notDeleted);
          result.failed.push(...one.failed);
        }
      }
      logger.info({ event: 'console_redrive', queue: query.queue, reason: query.reason, redriven: result.redriven.length, failed: result.failed.length }, 'DLQ redriven from the console');
      res.status(202).json({ redriven: result.redriven.length, failed: result.failed.length, notDeleted: result.notDeleted.length });
    }),
  );

  router.post(
    '/dlq/purge',
    handler(logger, async (req, res) => {
      const query = parseQuery(bulkQuery.omit({ reason: true }), req.query);
      const dlq = queueOf(query.queue);
      if (!dlq) return void res.status(404).json(missing);
      const purged = await dlq.purge();
      logger.warn({ event: 'console_purge', queue: query.queue, purged }, 'DLQ purged from the console');
      res.json({ purged });
    }),
  );

  router.post(
    '/dlq/:id/redrive',
    handler(logger, async (req, res) => {
      const query = parseQuery(bulkQuery.omit({ reason: true }), req.query);
      const dlq = queueOf(query.queue);
      if (!dlq) return void res.status(404).json(missing);
      const entry = await dlq.show(req.params.id!);
      if (!entry) return void res.status(404).json({ error: 'not_found', field: 'id', message: 'No such message in the DLQ (already redriven or purged?)' });
      const result = await dlq.redrive({ id: entry.id });
      logger.info({ event: 'console_redrive', queue: query.queue, id: entry.id, handle: entry.eventKey && shownName(entry.eventKey) }, 'DLQ message redriven from the console');
      res.status(202).json({ redriven: result.redriven.length, failed: result.failed.length, notDeleted: result.notDeleted.length });
    }),
  );

  return router;
}
