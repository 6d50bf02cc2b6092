import { sign } from '../../src/ingress/signature';
import { parseLines, upsertLines } from '../../src/lines/admin';
import { DynamoLineStore } from '../../src/lines/store';
import { startBirdStandIn, type BirdStandIn } from '../../src/local/bird-standin';
import { startGraphStandIn, type GraphStandIn } from '../../src/local/graph-standin';
import { replyKey } from '../../src/outbound/flow-replies';
import { outboundId } from '../../src/outbound/record';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { freePort, startMain, waitFor, type Child } from '../support/child';
import { capturedLogger } from '../support/logs';
import { loadFixture } from '../support/fixtures';
import { GRAPH_TOKEN, LINES, gatewayEnv, lineFor } from '../support/worker';

/**
 * The reply policy through the running process (`node dist/main.js all`) on the stand-ins, FIFO
 * inbound and outbound: the pause and the window checked by the send API at accept and by the
 * sender before the Graph call.
 */
const SECRET = 'reply-policy-app-secret';
const KEY = 'reply-policy-api-key-0123456789';
const NOW = Math.floor(Date.now() / 1000);
const FALLBACK = { name: 'reopen_conversation', language: 'es_MX', components: [{ type: 'body', parameters: [{ type: 'text', text: 'hola' }] }] };
const doc = LINES.doc;
const pywa = LINES.pywa;

let aws: AwsHarness;
let bird: BirdStandIn;
let graph: GraphStandIn;
let child: Child;
let url: string;

type Line = typeof doc | typeof pywa;

function payload(line: Line, field: string, value: Record<string, unknown>): string {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: line.wabaId, changes: [{ field, value: { messaging_product: 'whatsapp', metadata: { display_phone_number: line.displayPhoneNumber, phone_number_id: line.phoneNumberId }, ...value } }] }],
  });
}
const message = (line: Line, from: string, id: string, at: number) => payload(line, 'messages', { messages: [{ from, id, timestamp: String(at), type: 'text', text: { body: `text of ${id}` } }] });

async function post(body: string): Promise<void> {
  const res = await fetch(`${url}/webhooks/whatsapp`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(SECRET, body) } });
  expect(res.status).toBe(200);
}

function api(path: string, method = 'GET', body?: unknown, idempotencyKey?: string): Promise<Response> {
  return fetch(`${url}/v1/lines/${doc.lineId}${path}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

const sendsTo = (to: string) => graph.messages.sends().filter((s) => s.to === to && s.outcome !== 'error');
const replyId = (line: Line, wamid: string) => outboundId(line.lineId, replyKey(`msg#${line.phoneNumberId}#${wamid}`, 0));
const deliveredToBird = (wamid: string) => bird.received().find((c) => !c.duplicate && (c.body.message as { id?: string } | undefined)?.id === wamid)?.body;

async function replyStatus(wamid: string): Promise<{ status: string; reason?: string; error?: { title: string } }> {
  return (await api(`/messages/${replyId(doc, wamid)}`)).json() as Promise<{ status: string; reason?: string }>;
}

/** The sample of `name` carrying every label given (`a="b"` each, in any order). */
async function metric(name: string, ...labels: string[]): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.every((label) => l.includes(label)));
  return Number(line?.split(' ').pop() ?? 0);
}

function failWith(error: Error): never {
  throw new Error(`${error.message}\n${child.output().slice(-4000)}`);
}

beforeAll(async () => {
  aws = await startAwsHarness({ fifo: true, queueName: 'reply-policy' });
  bird = await startBirdStandIn({ logger: capturedLogger('warn').logger });
  graph = await startGraphStandIn({ token: GRAPH_TOKEN });
  // The AI answers every message with a free-form text.
  bird.respondWith((body) => (body.kind === 'message' ? { replies: [{ type: 'text', text: { body: `ai answers ${(body.message as { id: string }).id}` } }] } : undefined));
  const lines = new DynamoLineStore({ documents: aws.clients.documents, tableName: aws.names.linesTable });
  await upsertLines(
    lines,
    parseLines(
      [
        { ...lineFor('doc', bird.flowUrl()), outboundKeys: [KEY], windowFallbackTemplate: FALLBACK },
        { ...lineFor('pywa', bird.flowUrl()), outboundKeys: [KEY] },
      ],
      { production: false },
    ),
  );
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  child = startMain(
    'all',
    gatewayEnv(aws, { port, graph, appSecret: SECRET }),
  );
  await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 30_000, 'the process').catch(failWith);
}, 45_000);

afterAll(async () => {
  if (child && child.process.exitCode === null) {
    child.process.kill('SIGTERM');
    await child.exited;
  }
  await graph?.stop();
  await bird?.stop();
  await aws?.stop();
});

describe('no reply into a closed window', () => {
  const LATE = '16505550401';

  it('a message timestamped 25 h ago (a late Meta retry): the flow reply goes out as the line template, a free-form API send is 422 with no Graph call, a template API send goes out', async () => {
    await post(message(doc, LATE, 'wamid.LATE1', NOW - 25 * 3600));
    await waitFor(async () => sendsTo(LATE).length > 0, 20_000, 'the flow reply at Graph').catch(failWith);
    expect(sendsTo(LATE).map((s) => s.body)).toEqual([
      expect.objectContaining({ type: 'template', template: { name: FALLBACK.name, language: { code: 'es_MX' }, components: FALLBACK.components } }),
    ]);
    expect(JSON.stringify(sendsTo(LATE)[0]!.body)).not.toContain('ai answers');

    const refused = await api('/messages', 'POST', { to: LATE, type: 'text', text: { body: 'are you there?' } });
    expect(refused.status).toBe(422);
    expect(await refused.json()).toMatchObject({ error: 'outside_customer_service_window', windowClosedAt: new Date((NOW - 25 * 3600 + 86_400) * 1000).toISOString() });

    const template = await api('/messages', 'POST', { to: LATE, type: 'template', template: { name: 'order_update', language: { code: 'en_US' } } });
    expect(template.status).toBe(202);
    await waitFor(async () => sendsTo(LATE).length === 2, 15_000, 'the template at Graph').catch(failWith);
    expect(sendsTo(LATE).map((s) => (s.body.template as { name: string }).name)).toEqual([FALLBACK.name, 'order_update']);
    expect(await metric('wa_ingress_outbound_window_closed_total', 'outcome="fallback"')).toBe(1);
  }, 45_000);

  it('a fallback template whose answer was lost is resent as the template, never as the free-form text', async () => {
    const LOST = '16505550409';
    graph.messages.loseNextResponses(1, { statuses: false });
    await post(message(doc, LOST, 'wamid.LOST1', NOW - 25 * 3600));
    const toLost = () => graph.messages.sends().filter((s) => s.to === LOST);
    // Accepted with the answer lost and no status: uncertain, then one resend after the grace.
    await waitFor(async () => toLost().length >= 2, 30_000, 'the resend at Graph').catch(failWith);
    expect(toLost().map((s) => s.body.type)).toEqual(['template', 'template']);
    expect(JSON.stringify(toLost().map((s) => s.body))).not.toContain('ai answers');
  }, 45_000);

  it('a line without windowFallbackTemplate: the flow reply becomes outbound_failed (outside_customer_service_window) to the flow, with no Graph call', async () => {
    const OLD = '16505550402';
    await post(message(pywa, OLD, 'wamid.OLD1', NOW - 25 * 3600));
    const failed = () => bird.received().find((c) => c.body.kind === 'outbound_failed' && (c.body.outbound as { id?: string } | undefined)?.id === replyId(pywa, 'wamid.OLD1'));
    await waitFor(async () => failed() !== undefined, 20_000, 'outbound_failed at the flow').catch(failWith);
    expect(failed()!.body).toMatchObject({ kind: 'outbound_failed', error: { title: 'outside_customer_service_window' } });
    expect(sendsTo(OLD)).toEqual([]);
  }, 30_000);

  it('a message timestamped now: a free-form API send goes out', async () => {
    const FRESH = '16505550403';
    await post(message(doc, FRESH, 'wamid.FRESH1', NOW));
    await waitFor(async () => sendsTo(FRESH).length > 0, 20_000, 'the flow reply').catch(failWith);
    expect(sendsTo(FRESH)[0]!.body).toMatchObject({ type: 'text', text: { body: 'ai answers wamid.FRESH1' } });
    const res = await api('/messages', 'POST', { to: FRESH, type: 'text', text: { body: 'your order shipped' } });
    expect(res.status).toBe(202);
    await waitFor(async () => sendsTo(FRESH).length === 2, 15_000, 'the API send').catch(failWith);
    expect(sendsTo(FRESH)[1]!.body).toMatchObject({ type: 'text', text: { body: 'your order shipped' } });
  }, 30_000);
});

describe('a 131047 failed status closes the window', () => {
  it('a reply refused asynchronously with 131047: the next free-form API send is 422 from the status time', async () => {
    const Q = '16505550404';
    await post(message(doc, Q, 'wamid.Q1', NOW - 60));
    await waitFor(async () => sendsTo(Q).length === 1, 20_000, 'the reply').catch(failWith);
    const reply = sendsTo(Q)[0]!;
    const failedAt = NOW - 2;
    await post(payload(doc, 'messages', {
      statuses: [{ id: reply.wamid, status: 'failed', timestamp: String(failedAt), recipient_id: Q, biz_opaque_callback_data: reply.callbackData, errors: [{ code: 131047, title: 'Re-engagement message' }] }],
    }));
    const windowOf = async () => ((await (await api(`/contacts/${Q}`)).json()) as { windowOpenUntil?: string }).windowOpenUntil;
    await waitFor(async () => (await windowOf()) === new Date(failedAt * 1000).toISOString(), 15_000, 'the window closed').catch(failWith);
    const res = await api('/messages', 'POST', { to: Q, type: 'text', text: { body: 'hello again' } });
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({ error: 'outside_customer_service_window', windowClosedAt: new Date(failedAt * 1000).toISOString() });
    expect(sendsTo(Q)).toHaveLength(1);
  }, 30_000);
});

describe('the AI does not talk over a human', () => {
  it('an echo for C: C’s next message reaches Bird paused by business_app and the reply is suppressed; after DELETE …/pause the next reply is sent', async () => {
    const C = '16505550501';
    await post(payload(doc, 'smb_message_echoes', { message_echoes: [{ from: doc.displayPhoneNumber, to: C, id: 'wamid.ECHO-C', timestamp: String(NOW - 10), type: 'text', text: { body: 'I take this one' } }] }));
    await waitFor(async () => bird.received().some((c) => c.body.field === 'smb_message_echoes'), 15_000, 'the echo').catch(failWith);
    await post(message(doc, C, 'wamid.C1', NOW - 5));
    await waitFor(async () => (await replyStatus('wamid.C1')).status === 'suppressed', 20_000, 'the reply suppressed').catch(failWith);
    expect((deliveredToBird('wamid.C1')!.conversation as { paused: { by: string } }).paused.by).toBe('business_app');
    expect(await replyStatus('wamid.C1')).toMatchObject({ status: 'suppressed', reason: 'paused' });
    expect(sendsTo(C)).toEqual([]);

    expect((await api(`/contacts/${C}/pause`, 'DELETE')).status).toBe(200);
    await post(message(doc, C, 'wamid.C2', NOW - 1));
    await waitFor(async () => sendsTo(C).length > 0, 20_000, 'the reply after resume').catch(failWith);
    expect(sendsTo(C).map((s) => s.body.text)).toEqual([{ body: 'ai answers wamid.C2' }]);
    expect((deliveredToBird('wamid.C2')!.conversation as { paused: unknown }).paused).toBeNull();
  }, 45_000);

  it('PUT …/pause then a message: the reply is suppressed and counted; the business’s own API send still goes out; inbound still reaches Bird', async () => {
    const D = '16505550502';
    await post(message(doc, D, 'wamid.D1', NOW - 20));
    await waitFor(async () => sendsTo(D).length === 1, 20_000, 'the first reply').catch(failWith);
    const before = await metric('wa_ingress_outbound_suppressed_total', `lineId="${doc.lineId}"`, 'reason="paused"');
    const paused = await api(`/contacts/${D}/pause`, 'PUT', { minutes: 30 });
    expect(paused.status).toBe(200);
    expect(await paused.json()).toMatchObject({ pausedBy: 'api' });
    await post(message(doc, D, 'wamid.D2', NOW - 10));
    await waitFor(async () => (await replyStatus('wamid.D2')).status === 'suppressed', 20_000, 'the reply suppressed').catch(failWith);
    expect(deliveredToBird('wamid.D2')).toBeDefined();
    expect(await metric('wa_ingress_outbound_suppressed_total', `lineId="${doc.lineId}"`, 'reason="paused"')).toBe(before + 1);
    const own = await api('/messages', 'POST', { to: D, type: 'text', text: { body: 'a human writes through the API' } });
    expect(own.status).toBe(202);
    await waitFor(async () => sendsTo(D).length === 2, 15_000, 'the API send while paused').catch(failWith);
    expect(sendsTo(D).map((s) => (s.body.text as { body: string }).body)).toEqual(['ai answers wamid.D1', 'a human writes through the API']);
  }, 45_000);
});

describe('cost', () => {
  const P = '16505550601';
  type StatusFixture = { entry: Array<{ changes: Array<{ value: { statuses: Array<Record<string, unknown>> } }> }> };
  /** A status of our send, Meta's shape from the fixture, with its pricing. */
  function status(name: string, state: string, send: { wamid?: string; callbackData?: string }): string {
    const item = { ...(loadFixture(name).json as StatusFixture).entry[0]!.changes[0]!.value.statuses[0]! };
    return payload(doc, 'messages', { statuses: [{ ...item, id: send.wamid, status: state, timestamp: String(NOW), recipient_id: P, biz_opaque_callback_data: send.callbackData }] });
  }

  it('a status with pricing: the record has it, the billable count moves once per reply, and the contact’s `sent` counts it', async () => {
    await post(message(doc, P, 'wamid.P1', NOW - 30));
    await waitFor(async () => sendsTo(P).length === 1, 20_000, 'the reply').catch(failWith);
    const reply = sendsTo(P)[0]!;
    const labels = ['category="marketing"', `lineId="${doc.lineId}"`];
    const before = await metric('wa_ingress_outbound_billable_total', ...labels);

    await post(status('status-sent-pmp-pricing.json', 'sent', reply));
    const view = async () => (await (await api(`/messages/${reply.callbackData}`)).json()) as { status: string; pricing?: unknown };
    await waitFor(async () => (await view()).pricing !== undefined, 15_000, 'the pricing on the record').catch(failWith);
    expect(await view()).toMatchObject({ status: 'sent', pricing: { billable: true, pricing_model: 'PMP', category: 'marketing', type: 'regular' } });
    expect(await metric('wa_ingress_outbound_billable_total', ...labels)).toBe(before + 1);

    // The next status carries pricing too: stored, but the reply is counted once.
    await post(status('status-sent-pmp-pricing.json', 'delivered', reply));
    await waitFor(async () => (await view()).status === 'delivered', 15_000, 'delivered').catch(failWith);
    expect(await metric('wa_ingress_outbound_billable_total', ...labels)).toBe(before + 1);

    const contact = (await (await api(`/contacts/${P}`)).json()) as { sent: unknown };
    expect(contact.sent).toEqual({ total: 1, billable: 1, byCategory: { marketing: 1 } });
  }, 45_000);
});
