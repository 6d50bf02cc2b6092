import type { Request, Response } from 'express';
import { z } from 'zod';
import type { Line } from '../lines/line';
import type { ContactState } from './contact-state';
import type { ContactStates } from './contact-states';
import type { SentCounts } from '../journal/outbound-journal';

export const MAX_PAUSE_MINUTES = 10_080;
const pauseBody = z.object({ minutes: z.number().int().min(1).max(MAX_PAUSE_MINUTES) });

/** What `GET /v1/lines/:lineId/contacts/:contact` answers. `sent`: our replies to the contact over the last 30 days (empty without the outbound table). */
export interface ContactView {
  contactId: string;
  waId?: string;
  userId?: string;
  groupId?: string;
  windowOpenUntil?: string;
  pausedUntil?: string;
  pausedBy?: ContactState['pausedBy'];
  lastInboundAt?: string;
  sent: SentCounts | Record<string, never>;
}

/** The days `sent` counts back. */
export const SENT_DAYS = 30;

/** Counts a contact's replies since an ISO time, under each of its ids. */
export type SentCounter = (lineId: string, ids: string[], since: string) => Promise<SentCounts>;

export function toContactView(state: ContactState, now: number, sent: ContactView['sent'] = {}): ContactView {
  const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
  const pauseLive = state.pausedBy !== undefined && (state.pausedUntil === undefined || state.pausedUntil > now);
  return {
    contactId: state.contactId,
    waId: state.waId,
    userId: state.userId,
    groupId: state.groupId,
    windowOpenUntil: iso(state.windowOpenUntil),
    pausedUntil: pauseLive ? iso(state.pausedUntil) : undefined,
    pausedBy: pauseLive ? state.pausedBy : undefined,
    lastInboundAt: iso(state.lastInboundAt),
    sent,
  };
}

type Fail = (res: Response, status: number, error: string, message: string, extra?: Record<string, unknown>) => void;

/**
 * The contact API, behind the send API's authentication (the line's outbound keys): the line is in
 * `res.locals.line`. `:contact` is the person's wa_id (with or without +), BSUID, or a group id.
 */
export function contactHandlers(contacts: ContactStates, fail: Fail, clock: () => number = Date.now, countSent?: SentCounter) {
  const lineOf = (res: Response) => (res.locals as { line: Line }).line;
  const view = async (state: ContactState) => {
    const ids = [state.waId, state.userId, state.groupId].filter((id): id is string => id !== undefined);
    const sent = countSent ? await countSent(state.lineId, ids, new Date(clock() - SENT_DAYS * 86_400_000).toISOString()) : {};
    return toContactView(state, clock(), sent);
  };
  const notFound = (res: Response) => fail(res, 404, 'not_found', 'No conversation state for this contact on this line');
  return {
    get: async (req: Request, res: Response) => {
      const state = await contacts.get(lineOf(res).lineId, req.params.contact ?? '');
      if (!state) return notFound(res);
      res.json(await view(state));
    },
    pause: async (req: Request, res: Response) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse((Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0)).toString('utf8'));
      } catch {
        return fail(res, 400, 'invalid_json', 'The body must be a JSON object {"minutes": N}', { field: '(body)' });
      }
      const body = pauseBody.safeParse(parsed);
      if (!body.success) return fail(res, 400, 'invalid_body', `minutes: an integer from 1 to ${MAX_PAUSE_MINUTES}`, { field: 'minutes' });
      const state = await contacts.setPause(lineOf(res).lineId, req.params.contact ?? '', { type: 'pause', until: clock() + body.data.minutes * 60_000 });
      if (!state) return notFound(res);
      res.json(await view(state));
    },
    resume: async (req: Request, res: Response) => {
      const state = await contacts.setPause(lineOf(res).lineId, req.params.contact ?? '', { type: 'resume' });
      if (!state) return notFound(res);
      res.json(await view(state));
    },
  };
}
