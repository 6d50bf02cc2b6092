import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAwsClients, type AwsClients } from '../../src/aws/clients';
import { loadConfig } from '../../src/config/config';
import { sign } from '../../src/ingress/signature';
import { settleableStatuses } from '../../src/ingress/status-settlement';
import { envelopeToEvents } from '../../src/meta/envelope';
import { DynamoOutboundStore } from '../../src/outbound/dynamo-outbound-store';
import { fenceOf } from '../../src/outbound/outbound-store';
import { bodyHash, outboundId } from '../../src/outbound/record';
import { createRegistry } from '../../src/observability/metrics';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { APP_SECRET, startIngressHarness, type IngressHarness } from '../support/ingress';

/**
 * The ingress settles statuses of our replies that the line keeps from its flow (sent, delivered,
 * read under forwardStatuses `failed`) with one conditional write and no SQS message; everything
 * else takes the SQS path as before.
 */

const LINE_A = { lineId: 'line-a', phoneNumberId: '106540352242922' };
const LINE_ALL = { lineId: 'line-all', phoneNumberId: '106540352242923' };
const LINE_B = { lineId: 'line-b', phoneNumberId: '106540352242924' };
const TO = '16505551234';

let aws: AwsHarness;
let gw: IngressHarness;
let store: DynamoOutboundStore;

beforeAll(async () => {
  aws = await startAwsHarness();
  gw = await startIngressHarness(aws, { settleStatuses: {} });
  store = new DynamoOutboundStore({ documents: aws.clients.documents, itemUpdates: aws.clients.itemUpdates, tableName: aws.names.outboundTable, retentionDays: 30, registry: createRegistry({ defaultMetrics: false }) });
  const flow = { transport: 'flow' as const, flowUrl: 'http://127.0.0.1:9/flow', flowSecret: 'flow-secret' };
  await gw.putLines([
    { ...LINE_A, wabaId: 'waba-1', displayPhoneNumber: '15550783881', bird: flow },
    { ...LINE_ALL, wabaId: 'waba-1', displayPhoneNumber: '15550783882', bird: flow, forwardStatuses: 'all' },
    { ...LINE_B, wabaId: 'waba-1', displayPhoneNumber: '15550783883', bird: flow },
  ]);
});

afterAll(async () => {
  await gw.stop();
  await aws.stop();
});

beforeEach(async () => {
  await aws.drainQueue();
});

let n = 0;
/** A reply of `lineId` as the sender leaves it after Graph accepted it: claimed, then SENT with its wamid. */
async function sentReply(lineId: string): Promise<{ id: string; wamid: string }> {
  const key = `reply-${n++}`;
  const id = outboundId(lineId, key);
  const wamid = `wamid.direct-${n}`;
  const body = { type: 'text', text: { body: 'hi' } };
  await store.create({ id, lineId, idempotencyKey: key, to: TO, bodyHash: bodyHash(TO, body), body, type: 'text', source: 'flow_reply' });
  const claim = await store.claim(id, 10_000);
  if (!claim.claimed) throw new Error('not claimed');
  expect(await store.markSent(fenceOf(claim), wamid)).toBe(true);
  return { id, wamid };
}

const PRICING = { billable: true, pricing_model: 'PMP', category: 'service' };

function status(wamid: string, value: string, callback?: string, extra: Record<string, unknown> = {}) {
  return { id: wamid, status: value, timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: TO, ...(callback ? { biz_opaque_callback_data: callback } : {}), ...extra };
}

function payload(phoneNumberId: string, value: { statuses?: unknown[]; messages?: unknown[] }): string {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: 'waba-1', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: '15550783881', phone_number_id: phoneNumberId }, ...value } }] }],
  });
}

async function post(body: string, signature = sign(APP_SECRET, body)) {
  const res = await fetch(`${gw.url}/webhooks/whatsapp`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature } });
  return { status: res.status, body: (await res.json()) as { status?: string; error?: string } };
}

const billable = () => gw.metric('wa_ingress_outbound_billable_total', { lineId: LINE_A.lineId });

describe('statuses of our replies settled in the ingress', () => {
  it('a delivered status of our reply: 200 once the record took the step, and nothing on SQS', async () => {
    const { id, wamid } = await sentReply(LINE_A.lineId);
    const settledBefore = await gw.metric('wa_ingress_ingress_statuses_total', { result: 'settled' });
    const res = await post(payload(LINE_A.phoneNumberId, { statuses: [status(wamid, 'delivered', id)] }));
    expect(res).toEqual({ status: 200, body: { status: 'settled' } });
    const record = await store.get(id);
    expect(record?.status).toBe('delivered');
    expect(record?.journey.map((s) => s.step)).toEqual(['queued', 'sending', 'sent', 'delivered']);
    expect(await aws.drainQueue()).toEqual([]);
    expect(await gw.metric('wa_ingress_ingress_statuses_total', { result: 'settled' })).toBe(settledBefore + 1);
  });

  it("a retried status is stale: 200, no SQS, the journey and the billable count unchanged", async () => {
    const { id, wamid } = await sentReply(LINE_A.lineId);
    const before = await billable();
    const body = payload(LINE_A.phoneNumberId, { statuses: [status(wamid, 'read', id, { pricing: PRICING })] });
    expect((await post(body)).status).toBe(200);
    expect(await billable()).toBe(before + 1);
    const staleBefore = await gw.metric('wa_ingress_ingress_statuses_total', { result: 'stale' });
    expect(await post(body)).toEqual({ status: 200, body: { status: 'settled' } });
    expect(await billable()).toBe(before + 1);
    expect(await gw.metric('wa_ingress_ingress_statuses_total', { result: 'stale' })).toBe(staleBefore + 1);
    expect((await store.get(id))?.journey.map((s) => s.step)).toEqual(['queued', 'sending', 'sent', 'read']);
    expect(await aws.drainQueue()).toEqual([]);
  });

  it('several statuses of our replies in one payload are settled together', async () => {
    const one = await sentReply(LINE_A.lineId);
    const two = await sentReply(LINE_A.lineId);
    const res = await post(payload(LINE_A.phoneNumberId, { statuses: [status(one.wamid, 'delivered', one.id), status(two.wamid, 'read', two.id)] }));
    expect(res.body.status).toBe('settled');
    expect((await store.get(one.id))?.status).toBe('delivered');
    expect((await store.get(two.id))?.status).toBe('read');
    expect(await aws.drainQueue()).toEqual([]);
  });
});

describe('what still goes to SQS, as before', () => {
  const queued = async (body: string) => {
    expect(await post(body)).toEqual({ status: 200, body: { status: 'queued' } });
    return aws.drainQueue();
  };

  it('a status with no record of ours (foreign id, or another line\'s reply) goes to SQS', async () => {
    const fallbackBefore = await gw.metric('wa_ingress_ingress_statuses_total', { result: 'fallback' });
    const unknown = outboundId(LINE_A.lineId, 'never-created');
    expect(await queued(payload(LINE_A.phoneNumberId, { statuses: [status('wamid.foreign', 'delivered', unknown)] }))).toHaveLength(1);
    const other = await sentReply(LINE_B.lineId);
    expect(await queued(payload(LINE_A.phoneNumberId, { statuses: [status(other.wamid, 'delivered', other.id)] }))).toHaveLength(1);
    expect((await store.get(other.id))?.status).toBe('sent');
    expect(await gw.metric('wa_ingress_ingress_statuses_total', { result: 'fallback' })).toBe(fallbackBefore + 2);
  });

  it('one status not ours sends the whole payload to SQS, even when the other was settled', async () => {
    const ours = await sentReply(LINE_A.lineId);
    const messages = await queued(payload(LINE_A.phoneNumberId, { statuses: [status(ours.wamid, 'delivered', ours.id), status('wamid.elsewhere', 'read', outboundId(LINE_A.lineId, 'nope'))] }));
    expect(messages).toHaveLength(1);
    // The worker settles it again: the rank makes that a no-op.
    expect((await store.get(ours.id))?.status).toBe('delivered');
  });

  it('failed goes to SQS and the record is untouched: the flow and the contact state may need it', async () => {
    const { id, wamid } = await sentReply(LINE_A.lineId);
    expect(await queued(payload(LINE_A.phoneNumberId, { statuses: [status(wamid, 'failed', id, { errors: [{ code: 131047, title: 'Re-engagement message' }] })] }))).toHaveLength(1);
    expect((await store.get(id))?.status).toBe('sent');
  });

  it('a line that forwards every status (forwardStatuses all) gets them through SQS', async () => {
    const { id, wamid } = await sentReply(LINE_ALL.lineId);
    expect(await queued(payload(LINE_ALL.phoneNumberId, { statuses: [status(wamid, 'delivered', id)] }))).toHaveLength(1);
    expect((await store.get(id))?.status).toBe('sent');
  });

  it('a payload mixing a message and a status of ours goes to SQS', async () => {
    const { id, wamid } = await sentReply(LINE_A.lineId);
    const message = { from: TO, id: 'wamid.inbound-mixed', timestamp: String(Math.floor(Date.now() / 1000)), type: 'text', text: { body: 'hello' } };
    const messages = await queued(payload(LINE_A.phoneNumberId, { messages: [message], statuses: [status(wamid, 'delivered', id)] }));
    expect(messages.length).toBeGreaterThanOrEqual(1);
    expect((await store.get(id))?.status).toBe('sent');
  });

  it('a status without our callback id goes to SQS (the worker looks it up by wamid)', async () => {
    const { id, wamid } = await sentReply(LINE_A.lineId);
    expect(await queued(payload(LINE_A.phoneNumberId, { statuses: [status(wamid, 'delivered')] }))).toHaveLength(1);
    expect((await store.get(id))?.status).toBe('sent');
  });

  it('a bad signature is 401 before any write', async () => {
    const { id, wamid } = await sentReply(LINE_A.lineId);
    const res = await post(payload(LINE_A.phoneNumberId, { statuses: [status(wamid, 'read', id)] }), sign('wrong-secret', 'x'));
    expect(res.status).toBe(401);
    expect((await store.get(id))?.status).toBe('sent');
    expect(await aws.drainQueue()).toEqual([]);
  });
});

describe('when the outbound table cannot be written', () => {
  let down: IngressHarness;
  let deadClients: AwsClients;

  beforeAll(async () => {
    // Nothing listens on port 9 (discard): every DynamoDB call fails to connect.
    deadClients = createAwsClients({ region: 'us-east-1', endpoints: { ...aws.standIns.endpoints, dynamodb: 'http://127.0.0.1:9' }, forcePathStyle: true, credentials: aws.standIns.credentials });
    down = await startIngressHarness(aws, { settleStatuses: { clients: deadClients, timeoutMs: 1500 } });
  });
  afterAll(async () => {
    await down.stop();
    deadClients.destroy();
  });

  it('falls back to SQS and answers 200', async () => {
    const { id, wamid } = await sentReply(LINE_A.lineId);
    const body = payload(LINE_A.phoneNumberId, { statuses: [status(wamid, 'delivered', id)] });
    const res = await fetch(`${down.url}/webhooks/whatsapp`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(APP_SECRET, body) } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'queued' });
    expect(await aws.drainQueue()).toHaveLength(1);
    expect(await down.metric('wa_ingress_ingress_statuses_total', { result: 'fallback' })).toBe(1);
  });
});

describe('INGRESS_SETTLES_STATUSES', () => {
  it('is on by default and off with false', () => {
    const base = { SQS_QUEUE_URL: 'http://127.0.0.1:1/queue/q' };
    expect(loadConfig(base).ingress.settlesStatuses).toBe(true);
    expect(loadConfig({ ...base, INGRESS_SETTLES_STATUSES: 'false' }).ingress.settlesStatuses).toBe(false);
  });

  it('without the settlement (off), a status of our reply goes to SQS', async () => {
    const off = await startIngressHarness(aws);
    try {
      const { id, wamid } = await sentReply(LINE_A.lineId);
      const body = payload(LINE_A.phoneNumberId, { statuses: [status(wamid, 'delivered', id)] });
      const res = await fetch(`${off.url}/webhooks/whatsapp`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(APP_SECRET, body) } });
      expect(await res.json()).toEqual({ status: 'queued' });
      expect(await aws.drainQueue()).toHaveLength(1);
      expect((await store.get(id))?.status).toBe('sent');
    } finally {
      await off.stop();
    }
  });
});

describe('settleableStatuses', () => {
  const id = outboundId('line-a', 'k');
  const events = (value: { statuses?: unknown[]; messages?: unknown[] }) => envelopeToEvents(JSON.parse(payload(LINE_A.phoneNumberId, value)));
  it.each([
    ['sent, delivered and read with our id', [status('w1', 'sent', id), status('w2', 'delivered', id), status('w3', 'read', id)], 3],
    ['failed', [status('w1', 'failed', id)], undefined],
    ['no callback id', [status('w1', 'read')], undefined],
    ['a callback id that is not ours', [status('w1', 'read', 'order-42')], undefined],
    ['one of two not ours', [status('w1', 'read', id), status('w2', 'read')], undefined],
  ])('%s', (_name, statuses, count) => {
    expect(settleableStatuses(events({ statuses }))?.length).toBe(count);
  });
  it('nothing for an empty payload or one with a message', () => {
    expect(settleableStatuses([])).toBeUndefined();
    expect(settleableStatuses(events({ messages: [{ from: TO, id: 'w', timestamp: '1', type: 'text', text: { body: 'x' } }] }))).toBeUndefined();
  });
});

describe('when the outbound table hangs', () => {
  let hung: IngressHarness;
  let hungClients: AwsClients;
  let dynamo: Server;
  let requests = 0;

  beforeAll(async () => {
    // A DynamoDB endpoint that takes every request and never answers: each settle waits out its timeout.
    dynamo = createServer(() => {
      requests += 1;
    });
    await new Promise<void>((resolve) => dynamo.listen(0, '127.0.0.1', resolve));
    const { port } = dynamo.address() as AddressInfo;
    hungClients = createAwsClients({ region: 'us-east-1', endpoints: { ...aws.standIns.endpoints, dynamodb: `http://127.0.0.1:${port}` }, forcePathStyle: true, credentials: aws.standIns.credentials });
    hung = await startIngressHarness(aws, { settleStatuses: { clients: hungClients, timeoutMs: 200, breaker: { consecutiveFailures: 3, halfOpenAfterMs: 1500 } } });
  });
  afterAll(async () => {
    await hung.stop();
    hungClients.destroy();
    dynamo.closeAllConnections();
    await new Promise((resolve) => dynamo.close(resolve));
  });

  const postTo = async (body: string) => {
    const res = await fetch(`${hung.url}/webhooks/whatsapp`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(APP_SECRET, body) } });
    return { status: res.status, body: await res.json() };
  };

  it('stops trying after consecutive failures (every status still queued), and tries again once the breaker half-opens', async () => {
    const { id, wamid } = await sentReply(LINE_A.lineId);
    const body = payload(LINE_A.phoneNumberId, { statuses: [status(wamid, 'delivered', id)] });
    for (let i = 0; i < 3; i++) expect(await postTo(body)).toEqual({ status: 200, body: { status: 'queued' } });
    const tried = requests;
    expect(tried).toBeGreaterThanOrEqual(3);
    // Open: straight to SQS, not one more request to the hung table.
    for (let i = 0; i < 3; i++) expect(await postTo(body)).toEqual({ status: 200, body: { status: 'queued' } });
    expect(requests).toBe(tried);
    expect(await aws.drainQueue()).toHaveLength(6);
    expect(hung.logs.text()).toContain('"event":"status_settle_circuit_open"');
    // Half-open after 1.5 s: one payload tries the table again.
    await new Promise((resolve) => setTimeout(resolve, 1700));
    expect(await postTo(body)).toEqual({ status: 200, body: { status: 'queued' } });
    expect(requests).toBeGreaterThan(tried);
    expect(await aws.drainQueue()).toHaveLength(1);
  });
});
