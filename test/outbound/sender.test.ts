import { DynamoOutboundStore } from '../../src/outbound/dynamo-outbound-store';
import type { OutboundRecord } from '../../src/outbound/record';
import { wamidDigest } from '../../src/privacy/pseudonyms';
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
    lines: [
      { ...lineFor('doc', remote.bird.flowUrl()), outboundKeys: [KEY] },
      // A Graph token reference that cannot resolve: its replies are parked, never half-sent.
      { ...lineFor('pywa', remote.bird.flowUrl()), accessToken: 'env:WA_LINE_SECRET_NO_SUCH_TOKEN', outboundKeys: [KEY] },
    ],
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
async function reply(body: Record<string, unknown>, options: { to?: string; key?: string; lineId?: string } = {}): Promise<string> {
  const res = await fetch(`${rig.ingress.url}/v1/lines/${options.lineId ?? LINES.doc.lineId}/messages`, {
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
    expect(record.wamid).toBe(wamidDigest(sends[0]!.wamid!));
    // Statuses may be handled out of order (a read before its delivered): the journey only moves forward.
    const steps = record.journey.map((j) => j.step);
    expect(steps.slice(0, 2)).toEqual(['queued', 'sending']);
    expect(steps[steps.length - 1]).toBe('read');
    const rank = { queued: 0, sending: 1, sent: 2, delivered: 3, read: 4 } as Record<string, number>;
    expect(steps.map((step) => rank[step])).toEqual([...steps.map((step) => rank[step])].sort());

    await waitFor(async () => remote.bird.received().filter((c) => c.body.kind === 'status').length >= 3, 10_000, 'statuses at Bird');
    const statuses = remote.bird.received().filter((c) => c.body.kind === 'status');
    expect(statuses.map((c) => (c.body.status as { status: string }).status).sort()).toEqual(['delivered', 'read', 'sent']);
    for (const call of statuses) expect(call.body.outbound).toEqual({ id, idempotencyKey: 'happy-1' });

    const view = (await (await fetch(`${rig.ingress.url}/v1/lines/${LINES.doc.lineId}/messages/${id}`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as Record<string, unknown>;
    expect(view).toMatchObject({ id, status: 'read', to: TO, wamidDigest: record.wamid });
  });

  it('130429 twice, then OK: sent once', async () => {
    remote.graph.messages.failNextSends(2, { code: 130429 });
    const id = await reply(text('rate limited'));
    await waitFor(async () => ['sent', 'delivered', 'read'].includes((await store.get(id))!.status), 20_000, 'the reply sent');
    expect(accepted(id)).toHaveLength(1);
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

    // Parked last, after Bird heard it.
    let dlq: Awaited<ReturnType<typeof rig.aws.drainQueue>> = [];
    await waitFor(async () => (dlq = await rig.aws.drainQueue(rig.aws.standIns.outboundDlqUrl)).length > 0, 10_000, 'the parked reply');
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

  it('131056 (pair limit) delays only that recipient, by at least 6 s; another recipient carries on', async () => {
    remote.graph.messages.setStatuses(false);
    remote.graph.messages.failNextSends(1, { code: 131056 });
    const limited = await reply(text('too fast'), { to: '16505550300' });
    await waitFor(async () => sendsOf(limited).length === 1, 10_000, 'the refused send');
    const refusedAt = sendsOf(limited)[0]!.at;
    const other = await reply(text('meanwhile'), { to: '16505550301' });
    await waitFor(async () => accepted(other).length === 1, 5000, 'the other recipient');
    expect(accepted(limited)).toHaveLength(0);
    await waitFor(async () => accepted(limited).length === 1, 20_000, 'the pair-limited resend');
    expect(accepted(limited)[0]!.at - refusedAt).toBeGreaterThanOrEqual(6000);
  }, 30_000);

  it('a token error (190) is retried, counted for the alarm, and logged without the token', async () => {
    remote.graph.messages.setStatuses(false);
    const before = await rig.metric('wa_ingress_graph_token_failures_total');
    remote.graph.messages.failNextSends(1, { code: 190, message: 'Error validating access token' });
    // A recipient of its own: its retry (30 s) holds its recipient's later replies back, as real SQS FIFO would.
    const id = await reply(text('token trouble'), { to: '16505550400' });
    await waitFor(async () => sendsOf(id).length === 1, 10_000, 'the refused send');
    await waitFor(async () => (await rig.metric('wa_ingress_graph_token_failures_total')) === before + 1, 5000, 'the token failure counted');
    await waitFor(async () => (await store.get(id))!.journey.some((j) => j.step === 'retry'), 5000, 'the claim given back');
    expect(rig.logs.text()).toContain('graph_token_rejected');
    expect((await store.get(id))!.status).toBe('queued');
  });

  it('a 5xx is ambiguous: uncertain (and shown so), sent again only after the grace period', async () => {
    remote.graph.messages.failNextSends(1, { code: 131000 });
    const id = await reply(text('server error'));
    await waitFor(async () => sendsOf(id).length === 1, 10_000, 'the 500');
    // Graph answered; the sender records the outcome right after.
    await waitFor(async () => (await store.get(id))!.journey.some((j) => j.step === 'uncertain'), 5000, 'the uncertain step');
    // The API says what the gateway knows: Meta may or may not have it.
    const view = (await (await fetch(`${rig.ingress.url}/v1/lines/${LINES.doc.lineId}/messages/${id}`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { status: string };
    expect(view.status).toBe('uncertain');
    // No status can come for a refused send, so after the grace it is sent again: once.
    await waitFor(async () => accepted(id).length === 1, 15_000, 'the resend after the grace period');
    expect(sendsOf(id).map((s) => s.outcome)).toEqual(['error', 'accepted']);
  });

  it('ambiguous, and ambiguous again on its one resend: 2 POSTs, then uncertain and parked send_uncertain; a late status still settles it', async () => {
    remote.graph.messages.failNextSends(5, { code: 131000 });
    const id = await reply(text('overloaded'), { key: 'ambiguous-twice' });
    let parked: Awaited<ReturnType<typeof rig.aws.drainQueue>> = [];
    await waitFor(async () => (parked = await rig.aws.drainQueue(rig.aws.standIns.outboundDlqUrl)).length > 0, 15_000, 'the parked reply');
    expect(parked.map((m) => [m.MessageAttributes?.reason?.StringValue, m.MessageAttributes?.eventKey?.StringValue])).toEqual([['send_uncertain', id]]);
    const record = (await store.get(id))!;
    expect(record).toMatchObject({ status: 'uncertain', ambiguousSends: 2, attempts: 2 });
    expect(record.retryAt).toBeUndefined();
    // Past two more grace periods: nothing sends it again.
    await new Promise((r) => setTimeout(r, 4500));
    expect(sendsOf(id).map((s) => s.outcome)).toEqual(['error', 'error']);
    const view = (await (await fetch(`${rig.ingress.url}/v1/lines/${LINES.doc.lineId}/messages/${id}`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { status: string };
    expect(view.status).toBe('uncertain');
    expect(rig.logs.text()).toContain('outbound_send_uncertain');

    const late = JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [{ id: 'w', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '1', phone_number_id: LINES.doc.phoneNumberId }, statuses: [{ id: 'wamid.HBgLlate', status: 'delivered', timestamp: '1', recipient_id: TO, biz_opaque_callback_data: id }] } }] }],
    });
    expect(await rig.post(late)).toBe(200);
    await recordReaches(id, 'delivered');
  }, 30_000);

  it('a late sent status after read changes nothing', async () => {
    const id = await reply(text('read first'));
    const record = await recordReaches(id, 'read');
    const late = JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [{ id: 'w', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '1', phone_number_id: LINES.doc.phoneNumberId }, statuses: [{ id: sendsOf(id)[0]!.wamid, status: 'sent', timestamp: '1', recipient_id: TO, biz_opaque_callback_data: id }] } }] }],
    });
    // A redelivered status with a new key (Meta resends with other fields): dedupe would drop an identical one.
    expect(await rig.post(late)).toBe(200);
    await new Promise((r) => setTimeout(r, 1500));
    const after = (await store.get(id))!;
    expect(after.status).toBe('read');
    expect(after.journey.map((j) => j.step)).toEqual(record.journey.map((j) => j.step));
  });

  it('a line whose token cannot be resolved: the reply is parked with the reason and stays queued for a redrive', async () => {
    const id = await reply(text('no token'), { lineId: LINES.pywa.lineId });
    let parked: Awaited<ReturnType<typeof rig.aws.drainQueue>> = [];
    await waitFor(async () => (parked = await rig.aws.drainQueue(rig.aws.standIns.outboundDlqUrl)).length > 0, 10_000, 'the parked reply');
    expect(parked.map((m) => [m.MessageAttributes?.reason?.StringValue, m.MessageAttributes?.eventKey?.StringValue])).toEqual([['secret_env_missing', id]]);
    expect((await store.get(id))!.status).toBe('queued');
    expect(sendsOf(id)).toHaveLength(0);
  });

  it('logs hold no Graph token, no send key and no whole phone number', () => {
    const logs = rig.logs.text() + rig.ingress.logs.text();
    expect(logs).not.toContain('graph-token-under-test');
    expect(logs).not.toContain(KEY);
    expect(logs).not.toContain(TO);
  });
});
