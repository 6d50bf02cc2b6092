import { ContactStates, DynamoContactStore } from '../../src/conversation';
import { envelopeToEvents } from '../../src/meta/envelope';
import { createRegistry } from '../../src/observability/metrics';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { startIngressHarness, type IngressHarness } from '../support/ingress';
import { LINES } from '../support/worker';

const KEY = 'contact-api-key-0123456789';
const OTHER_KEY = 'other-line-key-0123456789';
const WA_ID = '16505550199';
const BSUID = 'US.555000199';
const SENT_AT = Math.floor(Date.now() / 1000) - 60;

let aws: AwsHarness;
let ingress: IngressHarness;

async function call(method: string, path: string, options: { key?: string; body?: string } = {}) {
  const res = await fetch(`${ingress.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${options.key ?? KEY}`, ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: options.body,
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  aws = await startAwsHarness();
  ingress = await startIngressHarness(aws, { outbound: true });
  const bird = { transport: 'flow' as const, flowUrl: 'http://127.0.0.1:9/flow', flowSecret: 'flow-secret' };
  await ingress.putLines([
    { ...LINES.doc, bird, outboundKeys: [KEY] },
    { ...LINES.pywa, bird, outboundKeys: [OTHER_KEY] },
  ]);
  // The worker's side: one message carrying both ids.
  const worker = new ContactStates({ store: new DynamoContactStore({ documents: aws.clients.documents, tableName: aws.names.contactsTable }), registry: createRegistry(), cacheMs: 0 });
  const [event] = envelopeToEvents({
    object: 'whatsapp_business_account',
    entry: [{ id: 'w', changes: [{ field: 'messages', value: { metadata: { phone_number_id: LINES.doc.phoneNumberId }, messages: [{ from: WA_ID, from_user_id: BSUID, id: 'wamid.API1', timestamp: String(SENT_AT), type: 'text', text: { body: 'hi' } }] } }] }],
  });
  await worker.observe(LINES.doc.lineId, event!);
});

afterAll(async () => {
  await ingress.stop();
  await aws.stop();
});

const path = (contact: string, line: string = LINES.doc.lineId) => `/v1/lines/${line}/contacts/${encodeURIComponent(contact)}`;

describe('contact API', () => {
  it('GET finds the contact by either id (number with or without +) and shows the window from Meta’s timestamp', async () => {
    const byBsuid = await call('GET', path(BSUID));
    expect(byBsuid.status).toBe(200);
    expect(byBsuid.body).toEqual({
      contactId: expect.stringMatching(/^ct_/),
      waId: WA_ID,
      userId: BSUID,
      windowOpenUntil: new Date((SENT_AT + 86_400) * 1000).toISOString(),
      lastInboundAt: new Date(SENT_AT * 1000).toISOString(),
      sent: {},
    });
    expect((await call('GET', path(`+${WA_ID}`))).body.contactId).toBe(byBsuid.body.contactId);
  });

  it('404 for an unknown contact; 401 with another line’s key; the state is per line', async () => {
    expect((await call('GET', path('15550000000'))).status).toBe(404);
    expect((await call('GET', path(WA_ID), { key: OTHER_KEY })).status).toBe(401);
    expect((await call('GET', path(WA_ID, LINES.pywa.lineId), { key: OTHER_KEY })).status).toBe(404);
  });

  it('PUT pause {minutes} → 200 with the state; DELETE resumes at once', async () => {
    const before = Date.now();
    const paused = await call('PUT', `${path(WA_ID)}/pause`, { body: JSON.stringify({ minutes: 30 }) });
    expect(paused.status).toBe(200);
    expect(paused.body.pausedBy).toBe('api');
    const until = Date.parse(paused.body.pausedUntil as string);
    expect(until).toBeGreaterThanOrEqual(before + 30 * 60_000);
    expect(until).toBeLessThan(Date.now() + 30 * 60_000 + 1000);
    expect((await call('GET', path(BSUID))).body.pausedBy).toBe('api');

    const resumed = await call('DELETE', `${path(BSUID)}/pause`);
    expect(resumed.status).toBe(200);
    expect(resumed.body.pausedBy).toBeUndefined();
    expect((await call('GET', path(WA_ID))).body.pausedUntil).toBeUndefined();
  });

  it.each([['{"minutes":0}'], ['{"minutes":10081}'], ['{"minutes":1.5}'], ['{}'], ['{"minutes":"5"}']])('400 naming the field for %s', async (body) => {
    const answer = await call('PUT', `${path(WA_ID)}/pause`, { body });
    expect(answer.status).toBe(400);
    expect(answer.body.field).toBe('minutes');
  });

  it('pausing an unknown contact is a 404, and creates nothing', async () => {
    expect((await call('PUT', `${path('15550000001')}/pause`, { body: '{"minutes":5}' })).status).toBe(404);
    expect((await call('GET', path('15550000001'))).status).toBe(404);
  });
});
