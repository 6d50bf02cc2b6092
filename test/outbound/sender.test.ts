import { DynamoOutboundStore } from '../../src/outbound/dynamo-outbound-store';
import type { OutboundRecord } from '../../src/outbound/record';
import { waitFor } from '../support/child';
import { APP_SECRET } from '../support/ingress';
import { LINES, lineFor, startRemoteStandIns, startWorkerRig, type RemoteStandIns, type WorkerRig } from '../support/worker';

const KEY = 'sender-test-key-0123456789';
const TO = '16505551234';

let remote: RemoteStandIns;
let rig: WorkerRig;
let store: DynamoOutboundStore;

beforeAll(async () => {
  remote = await startRemoteStandIns();
  rig = await startWorkerRig(remote, {
    outbound: true,
    lines: [{ ...lineFor('doc', remote.bird.flowUrl()), outboundKeys: [KEY] }],
  });
  store = new DynamoOutboundStore({ documents: rig.aws.clients.documents, tableName: rig.aws.names.outboundTable, retentionDays: 1 });
  remote.graph.messages.setWebhookTarget(`${rig.ingress.url}/webhooks/whatsapp`, APP_SECRET);
});

afterAll(async () => {
  await rig.stop();
  await remote.stop();
});

beforeEach(() => {
  remote.reset();
  remote.graph.messages.reset();
});

let counter = 0;
async function reply(body: Record<string, unknown>, options: { to?: string; key?: string } = {}): Promise<string> {
  const res = await fetch(`${rig.ingress.url}/v1/lines/${LINES.doc.lineId}/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', 'idempotency-key': options.key ?? `k-${Date.now()}-${counter++}` },
    body: JSON.stringify({ to: options.to ?? TO, ...body }),
  });
  const answer = (await res.json()) as { id: string };
  expect(res.status).toBe(202);
  return answer.id;
}

const text = (body: string) => ({ type: 'text', text: { body } });
const sendsOf = (id: string) => remote.graph.messages.sends().filter((s) => s.callbackData === id);
const accepted = (id: string) => sendsOf(id).filter((s) => s.outcome !== 'error');

async function recordReaches(id: string, status: OutboundRecord['status'], timeoutMs = 15_000): Promise<OutboundRecord> {
  await waitFor(async () => (await store.get(id))?.status === status, timeoutMs, `record ${id} ${status}`);
  return (await store.get(id))!;
}

describe('the sender', () => {
  it('sends once with biz_opaque_callback_data, records the wamid, and statuses settle it to read; Bird hears them with the outbound id', async () => {
    const id = await reply(text('hello from the AI'), { key: 'happy-1' });
    const record = await recordReaches(id, 'read');
    const sends = sendsOf(id);
    expect(sends).toHaveLength(1);
    expect(sends[0]).toMatchObject({ phoneNumberId: LINES.doc.phoneNumberId, to: TO, outcome: 'accepted' });
    expect(sends[0]!.body).toMatchObject({ messaging_product: 'whatsapp', to: TO, type: 'text', text: { body: 'hello from the AI' }, biz_opaque_callback_data: id });
    expect(record.wamid).toBe(sends[0]!.wamid);
    expect(record.journey.map((j) => j.step)).toEqual(['queued', 'sending', 'sent', 'delivered', 'read']);

    await waitFor(async () => remote.bird.received().filter((c) => c.body.kind === 'status').length >= 3, 10_000, 'statuses at Bird');
    const statuses = remote.bird.received().filter((c) => c.body.kind === 'status');
    expect(statuses.map((c) => (c.body.status as { status: string }).status).sort()).toEqual(['delivered', 'read', 'sent']);
    for (const call of statuses) expect(call.body.outbound).toEqual({ id, idempotencyKey: 'happy-1' });

    const view = (await (await fetch(`${rig.ingress.url}/v1/lines/${LINES.doc.lineId}/messages/${id}`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as Record<string, unknown>;
    expect(view).toMatchObject({ id, status: 'read', to: TO, wamid: record.wamid });
  });

  it('130429 twice, then OK: sent once', async () => {
    remote.graph.messages.failNextSends(2, { code: 130429 });
    const id = await reply(text('rate limited'));
    await recordReaches(id, 'sent', 20_000).catch(() => recordReaches(id, 'read'));
    await waitFor(async () => accepted(id).length === 1, 10_000, 'accepted send');
    expect(sendsOf(id).map((s) => s.outcome)).toEqual(['error', 'error', 'accepted']);
    expect(await rig.metric('wa_ingress_outbound_sends_total', { outcome: 'rate_limited' })).toBeGreaterThanOrEqual(2);
    const record = (await store.get(id))!;
    expect(record.journey.filter((j) => j.step === 'retry')).toHaveLength(2);
  });

  it('131047: failed with code and title, parked in the outbound DLQ, and Bird hears outbound_failed', async () => {
    remote.graph.messages.failNextSends(1, { code: 131047, message: 'Re-engagement message' });
    const id = await reply(text('too late'), { key: 'late-1' });
    const record = await recordReaches(id, 'failed');
    expect(record.error).toEqual({ code: 131047, title: 'Re-engagement message' });
    await waitFor(async () => remote.bird.received().some((c) => c.body.kind === 'outbound_failed'), 10_000, 'outbound_failed at Bird');
    const event = remote.bird.received().find((c) => c.body.kind === 'outbound_failed')!;
    expect(event.idempotencyKey).toBe(`outbound_failed#${id}`);
    expect(event.body).toMatchObject({ outbound: { id, idempotencyKey: 'late-1' }, error: { code: 131047 }, line: { lineId: LINES.doc.lineId } });

    const dlq = await rig.aws.drainQueue(rig.aws.standIns.outboundDlqUrl);
    expect(dlq.map((m) => m.MessageAttributes?.reason?.StringValue)).toEqual(['outside_customer_service_window']);
    expect(dlq[0]!.MessageAttributes?.eventKey?.StringValue).toBe(id);
    expect(sendsOf(id)).toHaveLength(1);
  });

  it('a lost response followed by its status: no resend', async () => {
    remote.graph.messages.loseNextResponses(1, { statuses: true });
    const id = await reply(text('lost but delivered'));
    await recordReaches(id, 'read');
    // Past the grace period and the job's retry: still one send.
    await new Promise((r) => setTimeout(r, 3500));
    expect(sendsOf(id)).toHaveLength(1);
    expect(sendsOf(id)[0]!.outcome).toBe('lost');
    expect((await store.get(id))!.journey.map((j) => j.step)).toContain('uncertain');
  });

  it('a lost response and no status: one resend after the grace period, counted', async () => {
    const before = await rig.metric('wa_ingress_outbound_uncertain_resends_total', { cause: 'uncertain' });
    remote.graph.messages.loseNextResponses(1, { statuses: false });
    const id = await reply(text('lost for good'));
    await waitFor(async () => accepted(id).length === 2, 15_000, 'the resend');
    await recordReaches(id, 'read');
    expect(sendsOf(id).map((s) => s.outcome)).toEqual(['lost', 'accepted']);
    expect(await rig.metric('wa_ingress_outbound_uncertain_resends_total', { cause: 'uncertain' })).toBe(before + 1);
  });

  it('10 replies to one recipient arrive in order; 10 recipients are sent in parallel', async () => {
    remote.graph.messages.setLatency(100);
    remote.graph.messages.setStatuses(false);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await reply(text(`part ${i}`), { to: '16505550100' }));
    await waitFor(async () => ids.every((id) => accepted(id).length === 1), 20_000, 'one recipient, 10 replies');
    const arrivals = remote.graph.messages.sends().filter((s) => s.to === '16505550100');
    expect(arrivals.map((s) => s.callbackData)).toEqual(ids);
    // The next one leaves only after Meta answered the previous: at least one latency apart.
    const serialGaps = arrivals.slice(1).map((s, i) => s.at - arrivals[i]!.at);
    expect(Math.min(...serialGaps)).toBeGreaterThanOrEqual(90);

    remote.graph.messages.reset();
    remote.graph.messages.setLatency(300);
    remote.graph.messages.setStatuses(false);
    const recipients = Array.from({ length: 10 }, (_, i) => `1650555020${i}`);
    const parallelIds = await Promise.all(recipients.map((to) => reply(text('hi'), { to })));
    const started = Date.now();
    await waitFor(async () => parallelIds.every((id) => accepted(id).length === 1), 20_000, '10 recipients');
    const at = remote.graph.messages.sends().map((s) => s.at);
    const spread = Math.max(...at) - Math.min(...at);
    // Serialised, 10 sends at 300 ms each would spread over 2.7 s or more.
    expect(spread).toBeLessThan(1000);
    expect(Date.now() - started).toBeLessThan(10 * 300);
  });

  it('logs hold no Graph token, no send key and no whole phone number', () => {
    const logs = rig.logs.text() + rig.ingress.logs.text();
    expect(logs).not.toContain('graph-token-under-test');
    expect(logs).not.toContain(KEY);
    expect(logs).not.toContain(TO);
  });
});
