import express, { type Router } from 'express';
import { z } from 'zod';
import { MAX_PAUSE_MINUTES } from '../conversation/contact-routes';
import type { ContactStates } from '../conversation/contact-states';
import type { InboundJournal } from '../journal/inbound-journal';
import type { Logger } from '../observability/logger';
import { handler, parseQuery } from './journal-routes';
import type { ContactPanelView } from './ui/contract';

const pauseBody = z.object({ minutes: z.number().int().min(1).max(MAX_PAUSE_MINUTES) });

/**
 * The event detail's contact panel: the window and pause of the contact an event names, found by
 * the digest its journal record keeps (the console never sees the number), and pause / resume
 * (state changes: the session's CSRF token is required like every POST).
 */
export function consoleContactRoutes(options: { journal: InboundJournal; contacts: ContactStates; logger: Logger; clock?: () => number }): Router {
  const { journal, contacts, logger } = options;
  const now = () => (options.clock ?? Date.now)();
  const router = express.Router();
  const notFound = (res: express.Response) => void res.status(404).json({ error: 'not_found', message: 'No conversation state for the contact of this event' });

  const located = async (handle: string) => {
    const ref = await journal.contactOf(handle);
    const state = ref && (await contacts.getByDigest(ref.lineId, ref.contactHash));
    return state && { state, contact: state.userId ?? state.waId ?? state.groupId ?? '' };
  };
  const panel = (state: Parameters<ContactStates['view']>[0]): ContactPanelView => {
    const view = contacts.view(state);
    return { contactId: view.contactId, windowOpenUntil: view.windowOpenUntil, paused: view.paused };
  };

  router.get(
    '/events/:handle/contact',
    handler(logger, async (req, res) => {
      const found = await located(req.params.handle ?? '');
      if (!found) return notFound(res);
      res.json(panel(found.state));
    }),
  );

  router.post(
    '/events/:handle/contact/pause',
    express.json({ limit: '1kb' }),
    handler(logger, async (req, res) => {
      const body = parseQuery(pauseBody, req.body);
      const found = await located(req.params.handle ?? '');
      if (!found) return notFound(res);
      const state = await contacts.setPause(found.state.lineId, found.contact, { type: 'pause', until: now() + body.minutes * 60_000 });
      logger.info({ event: 'console_contact_paused', lineId: found.state.lineId, contactId: found.state.contactId, minutes: body.minutes }, 'contact paused from the console');
      if (!state) return notFound(res);
      res.json(panel(state));
    }),
  );

  router.post(
    '/events/:handle/contact/resume',
    handler(logger, async (req, res) => {
      const found = await located(req.params.handle ?? '');
      if (!found) return notFound(res);
      const state = await contacts.setPause(found.state.lineId, found.contact, { type: 'resume' });
      logger.info({ event: 'console_contact_resumed', lineId: found.state.lineId, contactId: found.state.contactId }, 'contact resumed from the console');
      if (!state) return notFound(res);
      res.json(panel(state));
    }),
  );
  return router;
}
