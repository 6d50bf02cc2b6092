import { RetryableError } from '../../src/errors';
import { parseLines } from '../../src/lines/admin';
import type { WhatsAppEvent } from '../../src/meta/event';
import { FlowReplyScheduler } from '../../src/outbound/flow-replies';
import type { OutboundRequest } from '../../src/outbound/job';
import { createRegistry, type Registry } from '../../src/observability/metrics';
import { capturedLogger } from '../support/logs';
import { RecordingAcceptor } from '../support/recording-acceptor';

const [line] = parseLines(
  [{ lineId: 'demo', phoneNumberId: '106540352242922', wabaId: 'w', displayPhoneNumber: '15550783881', bird: { transport: 'flow', flowUrl: 'https://flow.example/x', flowSecret: 's' } }],
  { production: false },
);
const KEY = 'msg#106540352242922#wamid.ABC';

function event(contact: WhatsAppEvent['contact'] = { waId: '16505551234', userKey: '16505551234' }): WhatsAppEvent {
  return { key: KEY, kind: 'message', field: 'messages', phoneNumberId: '106540352242922', contact, message: { id: 'wamid.ABC', type: 'text', text: 'hi' }, raw: {} };
}

const text = (body: string) => ({ type: 'text', text: { body } });

let acceptor: RecordingAcceptor;
let registry: Registry;
let logs: ReturnType<typeof capturedLogger>;
let scheduler: FlowReplyScheduler;

beforeEach(() => {
  acceptor = new RecordingAcceptor();
  registry = createRegistry({ defaultMetrics: false });
  logs = capturedLogger('debug');
  scheduler = new FlowReplyScheduler({ acceptor, registry, logger: logs.logger });
});

async function counts(): Promise<Record<string, number>> {
  const values = (await registry.getSingleMetric('wa_ingress_flow_replies_total')?.get())?.values ?? [];
  return Object.fromEntries(values.map((v) => [String(v.labels.outcome), v.value]));
}

const rows = (requests: OutboundRequest[]) => requests.map((r) => [r.idempotencyKey, r.to, r.source, r.body]);

describe('FlowReplyScheduler', () => {
  it("queues each reply to the event's contact, in array order, keyed reply:<event key>:<index>", async () => {
    await scheduler.schedule({ line: line!, event: event(), answer: { flowResponse: { status: 'accepted', replies: [text('one'), text('two'), { type: 'reaction', reaction: { message_id: 'wamid.ABC', emoji: '👍' } }] } } });
    expect(rows(acceptor.accepted)).toEqual([
      [`reply:${KEY}:0`, '16505551234', 'flow_reply', text('one')],
      [`reply:${KEY}:1`, '16505551234', 'flow_reply', text('two')],
      [`reply:${KEY}:2`, '16505551234', 'flow_reply', { type: 'reaction', reaction: { message_id: 'wamid.ABC', emoji: '👍' } }],
    ]);
    expect(acceptor.accepted.every((r) => r.lineId === 'demo')).toBe(true);
    expect(await counts()).toEqual({ queued: 3 });
  });

  it("answers a conversation turn too: its replies are keyed by the turn's key and go to its contact", async () => {
    const turnKey = 'turn#demo#3f1c';
    const turn: WhatsAppEvent = {
      key: turnKey,
      kind: 'turn',
      field: 'messages',
      phoneNumberId: '106540352242922',
      contact: { waId: '16505551234', userKey: '16505551234' },
      turn: { id: '3f1c', cut: 'quiet', messages: [] },
      raw: null,
    };
    await scheduler.schedule({ line: line!, event: turn, answer: { flowResponse: { replies: [text('one answer to the whole burst')] } } });
    expect(rows(acceptor.accepted)).toEqual([[`reply:${turnKey}:0`, '16505551234', 'flow_reply', text('one answer to the whole burst')]]);
    expect(await counts()).toEqual({ queued: 1 });
  });

  it.each([
    ['no body', undefined],
    ["Bird's plain acknowledgement", { status: 'accepted', reference: KEY }],
    ['replies: null', { replies: null }],
    ['an empty list', { replies: [] }],
    ['a body that is a list', [text('x')]],
  ])('%s: nothing to send', async (_name, flowResponse) => {
    await scheduler.schedule({ line: line!, event: event(), answer: { flowResponse } });
    expect(acceptor.accepted).toEqual([]);
  });

  it('a user known only by a business-scoped user id gets the replies at that id', async () => {
    await scheduler.schedule({ line: line!, event: event({ userId: 'US.13491208655302741918', userKey: 'US.13491208655302741918' }), answer: { flowResponse: { replies: [text('hi')] } } });
    expect(rows(acceptor.accepted)).toEqual([[`reply:${KEY}:0`, 'US.13491208655302741918', 'flow_reply', text('hi')]]);
  });

  it('replies to a status (or any event that is not a message) are dropped: each reply brings statuses back, answering them would loop', async () => {
    const status: WhatsAppEvent = { key: 'status#wamid.X#read', kind: 'status', field: 'messages', contact: { waId: '16505551234' }, status: { id: 'wamid.X', status: 'read', recipientId: '16505551234' }, raw: {} };
    await scheduler.schedule({ line: line!, event: status, answer: { flowResponse: { replies: [text('thanks for reading')] } } });
    expect(acceptor.accepted).toEqual([]);
    expect(await counts()).toEqual({ not_a_message: 1 });
  });

  it('replies that are not a list, or an event without a contact, are counted and logged, never sent', async () => {
    await scheduler.schedule({ line: line!, event: event(), answer: { flowResponse: { replies: text('not a list') } } });
    await scheduler.schedule({ line: line!, event: { ...event(), contact: undefined }, answer: { flowResponse: { replies: [text('a'), text('b')] } } });
    expect(acceptor.accepted).toEqual([]);
    expect(await counts()).toEqual({ invalid: 1, no_contact: 2 });
    expect(logs.lines.filter((l) => l.includes('"event":"flow_reply_invalid"'))).toHaveLength(2);
  });

  it('an invalid reply is skipped, the others keep their index-based keys', async () => {
    await scheduler.schedule({ line: line!, event: event(), answer: { flowResponse: { replies: [text('a'), { text: { body: 'no type' } }, text('c')] } } });
    expect(rows(acceptor.accepted).map((r) => r[0])).toEqual([`reply:${KEY}:0`, `reply:${KEY}:2`]);
    expect(await counts()).toEqual({ queued: 2, invalid: 1 });
    expect(logs.text()).toContain('invalid_send_body');
  });

  it('a second answer (retry, redrive) queues nothing new, even when Bird answers differently or with more replies', async () => {
    await scheduler.schedule({ line: line!, event: event(), answer: { flowResponse: { replies: [text('first')] } } });
    await scheduler.schedule({ line: line!, event: event(), answer: { flowResponse: { replies: [text('first')] } } });
    await scheduler.schedule({ line: line!, event: event(), answer: { flowResponse: { replies: [text('changed mind'), text('and more')] } } });
    expect(rows(acceptor.accepted)).toEqual([[`reply:${KEY}:0`, '16505551234', 'flow_reply', text('first')]]);
    expect(await counts()).toEqual({ queued: 1, duplicate: 1, superseded: 2 });
  });

  it('a retry after a partial acceptance queues the rest of the same answer', async () => {
    await scheduler.schedule({ line: line!, event: event(), answer: { flowResponse: { replies: [text('a')] } } });
    await scheduler.schedule({ line: line!, event: event(), answer: { flowResponse: { replies: [text('a'), text('b')] } } });
    expect(rows(acceptor.accepted).map((r) => r[0])).toEqual([`reply:${KEY}:0`, `reply:${KEY}:1`]);
    expect(await counts()).toEqual({ queued: 2, duplicate: 1 });
  });

  it('rejects when the replies cannot be made durable, so the event is retried and not COMPLETED', async () => {
    acceptor.unavailable = true;
    await expect(scheduler.schedule({ line: line!, event: event(), answer: { flowResponse: { replies: [text('a')] } } })).rejects.toBeInstanceOf(RetryableError);
    // And a refusal the scheduler does not understand as "not sendable" is not swallowed either.
    const failing = new FlowReplyScheduler({
      acceptor: { accept: () => Promise.reject(new Error('socket hang up')) },
      registry: createRegistry({ defaultMetrics: false }),
      logger: logs.logger,
    });
    await expect(failing.schedule({ line: line!, event: event(), answer: { flowResponse: { replies: [text('a')] } } })).rejects.toThrow('socket hang up');
  });
});
