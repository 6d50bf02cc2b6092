import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import express, { type Request, type Response, type Router } from 'express';
import { Readable } from 'node:stream';
import { z } from 'zod';
import { EVENT_OUTCOME_FILTERS, type InboundJournal } from '../journal/inbound-journal';
import type { OutboundJournal } from '../journal/outbound-journal';
import { perMinute, UNROUTED_LINE } from '../journal/journey';
import { InvalidQueryError } from '../journal/query-error';
import type { Line } from '../lines/line';
import type { EventDetailView, LineSummary } from './ui/contract';
import { maskPhone, type Logger } from '../observability/logger';
import { eventHandle, looksLikeEventHandle } from '../privacy/pseudonyms';
import { latencyFigures } from '../journal/latency';
import type { LatencyReader, LineLatency } from '../journal/latency-reader';
import { PROBLEM_ADVICE, type ActiveProblem, type ProblemStore } from '../watch';

export interface LineSource {
  list(): Promise<Line[]>;
}

export interface JournalRoutesOptions {
  journal: InboundJournal;
  /** The replies' records: their sent and failed counts join the lines and the chart. */
  outbound?: OutboundJournal;
  lines: LineSource;
  /** Media objects are streamed through the console: the page never holds a presigned URL. */
  media?: { s3: S3Client; bucket: string };
  logger: Logger;
  /** The lines' stored problems (src/watch); without it every line shows none. */
  problems?: Pick<ProblemStore, 'read'>;
  /** Per-line delivery latency over the last hour; without it the figures are empty. */
  latency?: Pick<LatencyReader, 'line'>;
}

const NO_LATENCY: LineLatency = { metaToBird: latencyFigures([]), receivedToReplySent: latencyFigures([]) };

const limit = z.coerce.number().int().min(1).max(200).default(50);
const isoTime = z.string().refine((v) => !Number.isNaN(Date.parse(v)), 'an ISO 8601 time').transform((v) => new Date(v).toISOString());

const eventsQuery = z.object({
  lineId: z.string().min(1).max(128).optional(),
  wamid: z.string().min(1).max(256).optional(),
  contact: z.string().min(3).max(64).optional(),
  kind: z.enum(['message', 'status', 'error', 'account', 'unknown']).optional(),
  outcome: z.enum(EVENT_OUTCOME_FILTERS).optional(),
  since: isoTime.optional(),
  limit,
  cursor: z.string().max(8192).optional(),
});

const statsQuery = z.object({ lineId: z.string().min(1).max(128).optional(), minutes: z.coerce.number().int().min(5).max(180).default(60) });
const pageQuery = z.object({ limit, cursor: z.string().max(64).optional() });

/** zod's verdict as the API's 400: the first offending field by name. */
export function parseQuery<T extends z.ZodTypeAny>(schema: T, query: unknown): z.infer<T> {
  const parsed = schema.safeParse(query);
  if (parsed.success) return parsed.data as z.infer<T>;
  const issue = parsed.error.issues[0]!;
  throw new InvalidQueryError(issue.path.join('.') || 'query', issue.message);
}

/** Offset paging for lists read whole (lines, DLQ entries): the cursor is the next offset. */
export function offsetPage<T>(all: T[], query: { limit: number; cursor?: string }): { items: T[]; cursor?: string } {
  const start = query.cursor === undefined ? 0 : Number.parseInt(query.cursor, 10);
  if (!Number.isInteger(start) || start < 0) throw new InvalidQueryError('cursor', 'not a cursor this API returned');
  const items = all.slice(start, start + query.limit);
  return start + query.limit < all.length ? { items, cursor: String(start + query.limit) } : { items };
}

/** Async handlers with the API's error mapping: a bad query is a 400 naming the field; anything else a logged 500. */
export function handler(logger: Logger, fn: (req: Request, res: Response) => Promise<void>) {
  return (req: Request, res: Response) => {
    fn(req, res).catch((error: unknown) => {
      if (error instanceof InvalidQueryError) {
        logger.info({ event: 'console_bad_request', path: req.path, field: error.field }, 'console request refused');
        res.status(400).json({ error: 'invalid_request', field: error.field, message: error.message });
        return;
      }
      logger.error({ err: error, path: req.path }, 'console request failed');
      if (!res.headersSent) res.status(500).json({ error: 'internal', message: 'The console could not answer; see the gateway logs' });
    });
  };
}

const textOrUndefined = (value: unknown) => (typeof value === 'string' ? value : undefined);
const numberOrUndefined = (value: unknown) => (typeof value === 'number' ? value : undefined);

/**
 * The event a URL names: its handle. An event key typed by an operator (from a DLQ listing or a
 * log) is hashed to its handle; the console itself only ever builds URLs from handles.
 */
function handleParam(value: string): string {
  return looksLikeEventHandle(value) ? value : eventHandle(value);
}

/** GET lines, stats, events, events/:handle, events/:handle/media. */
export function journalRoutes(options: JournalRoutesOptions): Router {
  const { journal, lines, logger } = options;
  const router = express.Router();
  const replies = (lineId: string, now: Date, minutes: number) =>
    options.outbound?.activity(lineId, new Date(now.getTime() - minutes * 60_000).toISOString()) ?? Promise.resolve({ sent: 0, failed: 0, events: [] });

  router.get(
    '/lines',
    handler(logger, async (req, res) => {
      const page = parseQuery(pageQuery, req.query);
      const all = await lines.list();
      const now = new Date();
      const problems = (await options.problems?.read(all.map((l) => l.lineId))) ?? new Map<string, ActiveProblem[]>();
      const rows = await Promise.all(
        all.map(async (line): Promise<LineSummary> => {
          const hourAgo = new Date(now.getTime() - 60 * 60_000).toISOString();
          const [activity, outbound, latency] = await Promise.all([
            journal.activity(line.lineId, now),
            replies(line.lineId, now, 60),
            options.latency?.line(line.lineId, hourAgo) ?? Promise.resolve(NO_LATENCY),
          ]);
          return {
            lineId: line.lineId,
            active: line.active,
            transport: line.bird.transport,
            forwardStatuses: line.forwardStatuses,
            displayPhoneNumber: maskPhone(line.displayPhoneNumber),
            lastEventAt: activity.lastEventAt ?? null,
            lastHour: { ...activity.counts, sent: outbound.sent, failed: outbound.failed },
            truncated: activity.truncated,
            problems: (problems.get(line.lineId) ?? []).map((p) => ({ ...p, todo: PROBLEM_ADVICE[p.problem] })),
            latency,
          };
        }),
      );
      res.json(offsetPage(rows, page));
    }),
  );

  router.get(
    '/stats',
    handler(logger, async (req, res) => {
      const query = parseQuery(statsQuery, req.query);
      const now = new Date();
      const lineIds = query.lineId ? [query.lineId] : (await lines.list()).map((l) => l.lineId);
      const activities = await Promise.all(lineIds.map((id) => journal.activity(id, now, query.minutes)));
      const outbound = await Promise.all(lineIds.map((id) => replies(id, now, query.minutes)));
      const events = [...activities.flatMap((a) => a.events), ...outbound.flatMap((o) => o.events)];
      res.json({ minutes: query.minutes, buckets: perMinute(events, now, query.minutes) });
    }),
  );

  router.get(
    '/events',
    handler(logger, async (req, res) => {
      const query = parseQuery(eventsQuery, req.query);
      // Unrouted events (no line took them) are listed with every line's.
      const lineIds = query.lineId || query.wamid || query.contact ? [] : [...(await lines.list()).map((l) => l.lineId), UNROUTED_LINE];
      res.json(await journal.list(query, lineIds));
    }),
  );

  router.get(
    '/events/:handle',
    handler(logger, async (req, res) => {
      const detail = await journal.get(handleParam(req.params.handle!));
      if (!detail) {
        res.status(404).json({ error: 'not_found', field: 'handle', message: 'No journal for this event (never received, or past its retention)' });
        return;
      }
      const media = [...detail.journey].reverse().find((s) => s.step === 'media_stored')?.detail;
      const view: EventDetailView = {
        ...detail,
        media: media ? { type: textOrUndefined(media.type), size: numberOrUndefined(media.size), href: `events/${encodeURIComponent(detail.handle)}/media` } : undefined,
      };
      res.json(view);
    }),
  );

  router.get(
    '/events/:handle/media',
    handler(logger, async (req, res) => {
      const detail = await journal.get(handleParam(req.params.handle!));
      const key = [...(detail?.journey ?? [])].reverse().find((s) => s.step === 'media_stored')?.detail?.key;
      if (!options.media || typeof key !== 'string') {
        res.status(404).json({ error: 'not_found', field: 'handle', message: 'This event has no stored media' });
        return;
      }
      const object = await options.media.s3.send(new GetObjectCommand({ Bucket: options.media.bucket, Key: key }));
      res.set({
        'Content-Type': object.ContentType ?? 'application/octet-stream',
        // Never rendered inline as HTML from the console's origin.
        'Content-Disposition': 'attachment',
        'X-Content-Type-Options': 'nosniff',
        ...(object.ContentLength !== undefined ? { 'Content-Length': String(object.ContentLength) } : {}),
      });
      (object.Body as Readable).pipe(res);
    }),
  );

  return router;
}
