import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { ContactStates } from '../../src/conversation/contact-states';
import { DynamoContactStore } from '../../src/conversation/contact-store';
import { envelopeToEvents } from '../../src/meta/envelope';
import { createRegistry } from '../../src/observability/metrics';
import { startAwsHarness, type AwsHarness } from '../support/aws';

const LINE = 'line-state';
const BSUID = 'US.13491208655302741918';
const T = 1_750_000_000;

function message(id: string, at: number, ids: { from?: string; from_user_id?: string }, extra: Record<string, unknown> = { type: 'text', text: { body: 'hi' } }) {
  return envelopeToEvents({
    object: 'whatsapp_business_account',
    entry: [{ id: 'waba', changes: [{ field: 'messages', value: { metadata: { phone_number_id: '111' }, messages: [{ ...ids, id, timestamp: String(at), ...extra }] } }] }],
  })[0]!;
}

describe('contact state on DynamoDB (dynalite)', () => {
  let aws: AwsHarness;
  let store: DynamoContactStore;
  let writes: () => number;
  let states: ContactStates;

  beforeAll(async () => {
    aws = await startAwsHarness();
    // As the worker wires it: reads and writes on the cached item client (src/aws/item-updates.ts).
    store = new DynamoContactStore({ documents: aws.clients.documents, itemUpdates: aws.clients.itemUpdates, tableName: aws.names.contactsTable });
  });
  afterAll(() => aws.stop());
  beforeEach(() => {
    const registry = createRegistry();
    // No cache: every observe reads the table, so what is tested is the stored state.
    states = new ContactStates({ store, registry, cacheMs: 0, clock: () => (T + 60) * 1000 });
    writes = () => {
      const metric = (registry.getSingleMetric('wa_ingress_contact_state_updates_total') as unknown as { hashMap: Record<string, { value: number; labels: { outcome: string } }> }).hashMap;
      return Object.values(metric).filter((m) => m.labels.outcome === 'written').reduce((n, m) => n + m.value, 0);
    };
  });

  it('BSUID only, then both ids, then user_changed_number: one contactId; the window and a pause carry over', async () => {
    const first = await states.observe(LINE, message('wamid.A1', T, { from_user_id: BSUID }));
    const both = await states.observe(LINE, message('wamid.A2', T + 10, { from: '16505551234', from_user_id: BSUID }));
    expect(both!.contactId).toBe(first!.contactId);
    await states.setPause(LINE, '16505551234', { type: 'pause', until: (T + 3600) * 1000 });
    const changed = await states.observe(
      LINE,
      message('wamid.A3', T + 20, { from: '16505551234' }, { type: 'system', system: { type: 'user_changed_number', wa_id: '12195555358', body: 'changed' } }),
    );
    expect(changed!.contactId).toBe(first!.contactId);
    const state = await states.get(LINE, '+12195555358');
    expect(state).toMatchObject({ contactId: first!.contactId, waId: '12195555358', userId: BSUID, windowOpenUntil: (T + 10 + 86_400) * 1000, pausedBy: 'api' });
    expect(await states.get(LINE, '16505551234')).toBeUndefined();
    expect(changed!.paused).toEqual({ until: new Date((T + 3600) * 1000).toISOString(), by: 'api' });
  });

  it('a redelivered event writes nothing and changes nothing; a late one never moves the window back', async () => {
    const event = message('wamid.B1', T, { from: '15550001111' });
    await states.observe(LINE, event);
    const before = await states.get(LINE, '15550001111');
    const written = writes();
    await states.observe(LINE, event);
    await states.observe(LINE, message('wamid.B0', T - 3 * 86_400, { from: '15550001111' }));
    expect(writes()).toBe(written);
    expect(await states.get(LINE, '15550001111')).toEqual(before);
  });

  it('a person’s later messages in the same payload move the window in the first write', async () => {
    const payload = [message('wamid.C1', T, { from: '15550002222' }), message('wamid.C2', T + 30, { from: '15550002222' })];
    await states.observe(LINE, payload[0]!, { payload });
    const written = writes();
    const view = await states.observe(LINE, payload[1]!, { payload });
    expect(writes()).toBe(written);
    expect(view!.windowOpenUntil).toBe(new Date((T + 30 + 86_400) * 1000).toISOString());
  });

  it('two workers writing at once: neither loses the other’s fact (conditional on the version)', async () => {
    const other = new ContactStates({ store, registry: createRegistry(), cacheMs: 0 });
    await states.observe(LINE, message('wamid.D1', T, { from: '15550003333' }));
    await Promise.all([
      states.observe(LINE, message('wamid.D2', T + 100, { from: '15550003333' })),
      other.setPause(LINE, '15550003333', { type: 'pause', until: (T + 999) * 1000 }),
    ]);
    expect(await states.get(LINE, '15550003333')).toMatchObject({ windowOpenUntil: (T + 100 + 86_400) * 1000, pausedBy: 'api', pausedUntil: (T + 999) * 1000 });
  });

  it('two workers meeting a new person at once make one record, not two', async () => {
    const other = new ContactStates({ store, registry: createRegistry(), cacheMs: 0 });
    const [a, b] = await Promise.all([
      states.observe(LINE, message('wamid.N1', T, { from: '15550004444' })),
      other.observe(LINE, message('wamid.N2', T + 1, { from: '15550004444' })),
    ]);
    expect(a!.contactId).toBe(b!.contactId);
    const items = (await aws.clients.documents.send(new ScanCommand({ TableName: aws.names.contactsTable }))).Items ?? [];
    expect(items.filter((i) => i.waId === '15550004444')).toHaveLength(1);
    expect(await states.get(LINE, '15550004444')).toMatchObject({ windowOpenUntil: (T + 1 + 86_400) * 1000 });
  });

  it('erasure: deleteContact removes the record found by either id', async () => {
    await states.observe(LINE, message('wamid.E1', T, { from: '15550004444', from_user_id: 'US.4444' }));
    expect(await store.deleteContact(LINE, 'US.4444')).toBe(true);
    expect(await states.get(LINE, '15550004444')).toBeUndefined();
    expect(await store.deleteContact(LINE, 'US.4444')).toBe(false);
  });
});
