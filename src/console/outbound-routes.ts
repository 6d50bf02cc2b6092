import express, { type Router } from 'express';
import { z } from 'zod';
import { OUTBOUND_STATUS_FILTERS, type OutboundJournal } from '../journal/outbound-journal';
import type { Logger } from '../observability/logger';
import { MAX_REASON_LENGTH, type UncertainReplies } from '../outbound/uncertain-replies';
import { handler, parseQuery, type LineSource } from './journal-routes';
import type { BillableView } from './ui/contract';

const outboundQuery = z.object({
  lineId: z.string().min(1).max(128).optional(),
  to: z.string().min(3).max(64).optional(),
  status: z.enum(OUTBOUND_STATUS_FILTERS).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(8192).optional(),
});

const decisionBody = z.object({
  reason: z.string().trim().min(1).max(MAX_REASON_LENGTH),
  /** Who decided, as the operator names themself: the console token says no more than "an operator". */
  operator: z.string().trim().regex(/^[\w .@-]{1,64}$/, 'letters, digits, space, . @ - _ (at most 64)').optional(),
});

const DECISION_ANSWERS = {
  not_found: { status: 404, message: 'No outbound message with this id (or past its retention)' },
  not_uncertain: { status: 409, message: 'The reply is not parked uncertain (a status or another decision came first): nothing changed' },
  no_parked_job: { status: 409, message: 'Its parked job is not in the outbound DLQ (yet): try again in a minute; nothing changed' },
} as const;

/**
 * GET outbound (replies, newest first) and GET outbound/:id (with its journey); with `decisions`,
 * POST outbound/:id/resend and outbound/:id/mark-sent {reason, operator?} for a reply parked
 * `send_uncertain`.
 */
export function outboundRoutes(options: { outbound: OutboundJournal; lines: LineSource; decisions?: UncertainReplies; logger: Logger }): Router {
  const router = express.Router();
  const { decisions } = options;
  // The Overview's cost table: today's (UTC) billable replies per line and category. Counts, not money.
  router.get(
    '/billable',
    handler(options.logger, async (_req, res) => {
      const since = `${new Date().toISOString().slice(0, 10)}T00:00:00.000Z`;
      const lineIds = (await options.lines.list()).map((l) => l.lineId);
      const perLine = await Promise.all(lineIds.map(async (lineId) => ({ lineId, counts: await options.outbound.billable(lineId, since) })));
      const rows = perLine.flatMap(({ lineId, counts }) => Object.entries(counts).map(([category, count]) => ({ lineId, category, count })));
      res.json({ since, rows } satisfies BillableView);
    }),
  );
  if (decisions) {
    for (const [path, action] of [['resend', 'resend'], ['mark-sent', 'mark_sent']] as const) {
      router.post(
        `/outbound/:id/${path}`,
        express.json({ limit: '4kb' }),
        handler(options.logger, async (req, res) => {
          const body = parseQuery(decisionBody, req.body ?? {});
          const detail = await options.outbound.get(req.params.id!);
          if (!detail) return void res.status(404).json({ error: 'not_found', field: 'id', message: DECISION_ANSWERS.not_found.message });
          const actor = body.operator ? `console:${body.operator}` : 'console';
          const result = await decisions.decide(detail.lineId, detail.id, { action, actor, reason: body.reason });
          if (result.outcome !== 'applied') {
            const answer = DECISION_ANSWERS[result.outcome];
            return void res.status(answer.status).json({ error: result.outcome, message: answer.message, ...('status' in result ? { status: result.status } : {}) });
          }
          res.json({ id: detail.id, status: result.status, redriven: result.redriven });
        }),
      );
    }
  }
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
