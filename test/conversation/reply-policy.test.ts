import type { ContactState } from '../../src/conversation/contact-state';
import { decideReply, type ReplyDecision, type ReplyOrigin, type WindowFallbackTemplate } from '../../src/conversation/reply-policy';

const NOW = Date.parse('2026-12-04T12:00:00Z');
const HOUR = 3_600_000;
const base: ContactState = { lineId: 'doc', contactId: 'ct_1', waId: '16505551234' };
const open: ContactState = { ...base, windowOpenUntil: NOW + HOUR };
const closed: ContactState = { ...base, windowOpenUntil: NOW - HOUR };
const closedNow: ContactState = { ...base, windowOpenUntil: NOW };
const pausedApi: ContactState = { ...open, pausedUntil: NOW + HOUR, pausedBy: 'api' };
const pauseOver: ContactState = { ...open, pausedUntil: NOW - 1, pausedBy: 'business_app' };
const handover: ContactState = { ...closed, pausedBy: 'meta_handover' };
const FALLBACK: WindowFallbackTemplate = { name: 'reopen_chat', language: 'es_MX', components: [{ type: 'body', parameters: [] }] };
const TEMPLATE_BODY = { type: 'template', template: { name: 'reopen_chat', language: { code: 'es_MX' }, components: [{ type: 'body', parameters: [] }] } };

const SEND: ReplyDecision = { action: 'send' };
const SUPPRESS: ReplyDecision = { action: 'suppress', reason: 'paused' };
const REFUSE = (at: number): ReplyDecision => ({ action: 'refuse', reason: 'outside_customer_service_window', windowClosedAt: at });
const FALL_BACK = (at: number): ReplyDecision => ({ action: 'fallback', body: TEMPLATE_BODY as never, windowClosedAt: at });

const cases: Array<[string, ReplyOrigin, string, ContactState | undefined, WindowFallbackTemplate | undefined, ReplyDecision]> = [
  ['no record: the API sends free-form (131047 handled as before)', 'api', 'text', undefined, undefined, SEND],
  ['no record: the flow sends free-form', 'flow_reply', 'text', undefined, FALLBACK, SEND],
  ['a record with no window (an echo made it): send', 'flow_reply', 'text', base, undefined, SEND],
  ['open window: the API sends', 'api', 'text', open, undefined, SEND],
  ['open window: the flow sends', 'flow_reply', 'image', open, FALLBACK, SEND],
  ['closed window: the API free-form is refused', 'api', 'text', closed, FALLBACK, REFUSE(NOW - HOUR)],
  ['closed window: the CLI free-form is refused', 'cli', 'text', closed, undefined, REFUSE(NOW - HOUR)],
  ['closed at this very ms: closed', 'api', 'interactive', closedNow, undefined, REFUSE(NOW)],
  ['closed window: an API template is sent', 'api', 'template', closed, undefined, SEND],
  ['closed window: a flow template is sent as it is', 'flow_reply', 'template', closed, FALLBACK, SEND],
  ['closed window: the flow reply becomes the line fallback template', 'flow_reply', 'text', closed, FALLBACK, FALL_BACK(NOW - HOUR)],
  ['closed window: a Bird webhook reply becomes the fallback', 'bird_webhook', 'image', closed, FALLBACK, FALL_BACK(NOW - HOUR)],
  ['closed window, no fallback: the flow reply is refused', 'flow_reply', 'text', closed, undefined, REFUSE(NOW - HOUR)],
  ['closed window, no fallback: the Bird webhook reply is refused', 'bird_webhook', 'text', closed, undefined, REFUSE(NOW - HOUR)],
  ['paused by the API: the flow reply is suppressed', 'flow_reply', 'text', pausedApi, FALLBACK, SUPPRESS],
  ['paused: a Bird webhook reply is suppressed', 'bird_webhook', 'text', pausedApi, undefined, SUPPRESS],
  ['paused: even a flow template is suppressed', 'flow_reply', 'template', pausedApi, undefined, SUPPRESS],
  ['paused: the API (the business itself) still sends', 'api', 'text', pausedApi, undefined, SEND],
  ['paused: the CLI still sends', 'cli', 'text', pausedApi, undefined, SEND],
  ['a pause that has ended: the flow sends', 'flow_reply', 'text', pauseOver, undefined, SEND],
  ['Meta handover (no end) over a closed window: suppressed first', 'flow_reply', 'text', handover, FALLBACK, SUPPRESS],
  ['Meta handover, closed window: the API free-form is refused', 'api', 'text', handover, undefined, REFUSE(NOW - HOUR)],
];

describe('decideReply: send / suppress / fallback / refuse', () => {
  it.each(cases)('%s', (_name, source, type, state, fallback, expected) => {
    expect(decideReply({ source, type, state, fallback, now: NOW })).toEqual(expected);
  });

  it('a fallback without components sends none', () => {
    const decision = decideReply({ source: 'flow_reply', type: 'text', state: closed, fallback: { name: 'hello', language: 'en_US' }, now: NOW });
    expect(decision).toEqual({ action: 'fallback', body: { type: 'template', template: { name: 'hello', language: { code: 'en_US' } } }, windowClosedAt: NOW - HOUR });
  });
});
