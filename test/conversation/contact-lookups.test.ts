import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ContactStates } from '../../src/conversation/contact-states';
import { DynamoContactStore, likelyKinds } from '../../src/conversation/contact-store';
import { parseLines } from '../../src/lines/admin';
import { envelopeToEvents } from '../../src/meta/envelope';
import { ReplyGate } from '../../src/outbound/reply-gate';
import { lineFor } from '../support/worker';
import { createRegistry } from '../../src/observability/metrics';
import { startAwsHarness, type AwsHarness } from '../support/aws';

/**
 * What a contact lookup costs in DynamoDB calls (counted on the item client, as the worker and the
 * sender wire it), and that the cheap path never returns the wrong person.
 */
const LINE = 'line-lookups';
const T = 1_750_000_000;

function message(id: string, at: number, ids: { from?: string; from_user_id?: string; group_id?: string }, extra: Record<string, unknown> = { type: 'text', text: { body: 'hi' } }) {
  return envelopeToEvents({
    object: 'whatsapp_business_account',
    entry: [{ id: 'waba', changes: [{ field: 'messages', value: { metadata: { phone_number_id: '111' }, messages: [{ ...ids, id, timestamp: String(at), ...extra }] } }] }],
  })[0]!;
}

const numberChange = (id: string, at: number, from: string, to: string) =>
  message(id, at, { from }, { type: 'system', system: { type: 'user_changed_number', wa_id: to, body: 'changed' } });

describe('contact lookups: calls per read (dynalite)', () => {
  let aws: AwsHarness;
  let store: DynamoContactStore;
  let states: ContactStates;
  let now: number;
  /** `GetItem` or `Query <index>` per call the store sent. */
  const calls: string[] = [];
  const callsOf = async (work: () => Promise<unknown>) => {
    calls.length = 0;
    await work();
    return [...calls];
  };

  beforeAll(async () => {
    aws = await startAwsHarness();
    aws.clients.itemUpdates.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { IndexName?: string };
        calls.push(`${String(context.commandName).replace(/Command$/, '')}${input.IndexName ? ` ${input.IndexName}` : ''}`);
        return next(args);
      },
      { step: 'initialize', name: 'testContactCallCounter' },
    );
    store = new DynamoContactStore({ documents: aws.clients.documents, itemUpdates: aws.clients.itemUpdates, tableName: aws.names.contactsTable });
  });
  afterAll(() => aws.stop());
  beforeEach(() => {
    now = (T + 60) * 1000;
    states = new ContactStates({ store, registry: createRegistry(), cacheMs: 5000, clock: () => now });
  });

  it('the reply gate’s read of a contact first seen by wa_id: one consistent GetItem, with or without the +', async () => {
    await states.observe(LINE, message('wamid.L1', T, { from: '15550007001' }));
    expect(await callsOf(() => states.get(LINE, '15550007001'))).toEqual(['GetItem']);
    expect(await callsOf(() => states.get(LINE, '+15550007001'))).toEqual(['GetItem']);
    expect(await states.get(LINE, '+15550007001')).toMatchObject({ waId: '15550007001', windowOpenUntil: (T + 86_400) * 1000 });
  });

  it('the sender’s reply gate: an AI reply to a known contact costs one GetItem, and a pause holds it back', async () => {
    const line = parseLines([lineFor({ lineId: LINE, phoneNumberId: '111', wabaId: 'waba', displayPhoneNumber: '+1 555 000 0111' }, 'http://127.0.0.1:9/flow')], { production: false })[0]!;
    const gate = new ReplyGate({ contacts: states, registry: createRegistry(), clock: () => now });
    const reply = { v: 1 as const, id: 'job-1', lineId: LINE, to: '15550007011', idempotencyKey: 'k-1', source: 'flow_reply' as const, body: { type: 'text', text: { body: 'hi' } } };
    await states.observe(LINE, message('wamid.L15', T, { from: '15550007011' }));
    const calls1 = await callsOf(async () => expect(await gate.decide(reply, line)).toEqual({ action: 'send' }));
    expect(calls1).toEqual(['GetItem']);
    await states.setPause(LINE, '15550007011', { type: 'pause', until: (T + 3600) * 1000 });
    expect(await gate.decide(reply, line)).toMatchObject({ action: 'suppress' });
  });

  it('reads fresh: a pause set through another process is seen by the next read (no cache on the gate’s path)', async () => {
    await states.observe(LINE, message('wamid.L2', T, { from: '15550007002' }));
    expect((await states.get(LINE, '15550007002'))?.pausedBy).toBeUndefined();
    const api = new ContactStates({ store, registry: createRegistry(), cacheMs: 5000 });
    await api.setPause(LINE, '15550007002', { type: 'pause', until: (T + 3600) * 1000 });
    expect(await states.get(LINE, '15550007002')).toMatchObject({ pausedBy: 'api', pausedUntil: (T + 3600) * 1000 });
  });

  it('a contact first seen by BSUID, looked up by wa_id: the direct read misses, the wa_id index finds them', async () => {
    await states.observe(LINE, message('wamid.L3', T, { from_user_id: 'US.7003' }));
    await states.observe(LINE, message('wamid.L4', T + 10, { from: '15550007003', from_user_id: 'US.7003' }));
    const lookup = await callsOf(async () => expect(await states.get(LINE, '15550007003')).toMatchObject({ userId: 'US.7003', waId: '15550007003' }));
    expect(lookup).toEqual(['GetItem', 'Query byWaId', 'GetItem']);
    expect(await callsOf(() => states.get(LINE, 'US.7003'))).toEqual(['GetItem']);
  });

  it('after user_changed_number the old number’s key holds a record that moved on: not returned for the old number', async () => {
    await states.observe(LINE, message('wamid.L5', T, { from: '15550007004' }));
    await states.observe(LINE, numberChange('wamid.L6', T + 20, '15550007004', '15550007005'));
    expect(await states.get(LINE, '15550007004')).toBeUndefined();
    const moved = await states.get(LINE, '15550007005');
    expect(moved).toMatchObject({ waId: '15550007005', windowOpenUntil: (T + 86_400) * 1000 });
  });

  it('a new person on a number someone moved off gets their own record (the derived key is taken): not stuck contended', async () => {
    await states.observe(LINE, message('wamid.L20', T, { from: '15550007020' }));
    const mover = await states.observe(LINE, numberChange('wamid.L21', T + 20, '15550007020', '15550007021'));
    now += 10_000;
    const other = new ContactStates({ store, registry: createRegistry(), cacheMs: 0 });
    const [a, b] = await Promise.all([
      states.observe(LINE, message('wamid.L22', T + 30, { from: '15550007020' })),
      other.observe(LINE, message('wamid.L23', T + 31, { from: '15550007020' })),
    ]);
    expect(a!.contactId).toBe(b!.contactId);
    expect(a!.contactId).not.toBe(mover!.contactId);
    expect(await states.get(LINE, '15550007020')).toMatchObject({ contactId: a!.contactId, waId: '15550007020', windowOpenUntil: (T + 31 + 86_400) * 1000 });
    expect(await states.get(LINE, '15550007021')).toMatchObject({ contactId: mover!.contactId, windowOpenUntil: (T + 86_400) * 1000 });
  });

  it('right after a number change, the process cache does not hand the mover to the next writer from the old number', async () => {
    await states.observe(LINE, message('wamid.L24', T, { from: '15550007024' }));
    const mover = await states.observe(LINE, numberChange('wamid.L25', T + 20, '15550007024', '15550007025'));
    const newcomer = await states.observe(LINE, message('wamid.L26', T + 30, { from: '15550007024' }));
    expect(newcomer!.contactId).not.toBe(mover!.contactId);
    expect(await states.get(LINE, '15550007025')).toMatchObject({ contactId: mover!.contactId, waId: '15550007025' });
  });

  it('a group: one GetItem by its id', async () => {
    await states.observe(LINE, message('wamid.L8', T, { from: '15550007006', group_id: 'G-lookups' }));
    expect(await callsOf(() => states.get(LINE, 'G-lookups'))).toEqual(['GetItem']);
    expect(await states.get(LINE, 'G-lookups')).toMatchObject({ groupId: 'G-lookups' });
  });

  it('an unknown contact: the direct read, then every index (likeliest first), nothing found', async () => {
    expect(await callsOf(async () => expect(await states.get(LINE, '15550007999')).toBeUndefined())).toEqual(['GetItem', 'Query byWaId', 'Query byUserId', 'Query byGroup']);
    expect(await callsOf(() => states.get(LINE, 'US.7999'))).toEqual(['GetItem', 'Query byUserId', 'Query byGroup', 'Query byWaId']);
  });

  it('the worker: a new person costs one index Query (no direct read); one it met before, once the cache is stale, one GetItem', async () => {
    expect(await callsOf(() => states.observe(LINE, message('wamid.L9', T, { from: '15550007007' })))).toEqual(['Query byWaId', 'PutItem']);
    now += 10_000;
    expect(await callsOf(() => states.observe(LINE, message('wamid.L10', T + 5, { from: '15550007007' })))).toEqual(['GetItem', 'PutItem']);
  });

  it('the worker’s remembered contactId is gone (erased meanwhile): back to the index, and a new record', async () => {
    const first = await states.observe(LINE, message('wamid.L11', T, { from: '15550007008' }));
    expect(await store.deleteContact(LINE, '15550007008')).toBe(true);
    now += 10_000;
    const lookup = await callsOf(async () => {
      const view = await states.observe(LINE, message('wamid.L12', T + 30, { from: '15550007008' }));
      expect(view).toMatchObject({ contactId: first!.contactId, windowOpenUntil: new Date((T + 30 + 86_400) * 1000).toISOString() });
    });
    expect(lookup).toEqual(['GetItem', 'Query byWaId', 'PutItem']);
    expect(await states.get(LINE, '15550007008')).toMatchObject({ lastInboundAt: (T + 30) * 1000 });
  });

  it('erasure finds and deletes by either id, then finds nothing', async () => {
    await states.observe(LINE, message('wamid.L14', T, { from: '15550007010', from_user_id: 'US.7010' }));
    expect(await store.deleteContact(LINE, '15550007010')).toBe(true);
    expect(await states.get(LINE, 'US.7010')).toBeUndefined();
    expect(await store.deleteContact(LINE, 'US.7010')).toBe(false);
  });
});

describe('likelyKinds', () => {
  it('puts wa_id first for digits only (with or without +), the BSUID first otherwise; every kind stays', () => {
    expect(likelyKinds('15550001111')).toEqual(['waId', 'userId', 'groupId']);
    expect(likelyKinds('+15550001111')).toEqual(['waId', 'userId', 'groupId']);
    expect(likelyKinds('US.13491208655302741918')).toEqual(['userId', 'groupId', 'waId']);
    expect(likelyKinds('G123')).toEqual(['userId', 'groupId', 'waId']);
  });
});

describe('contact lookups: an index that lags the item (dynalite)', () => {
  let aws: AwsHarness;
  let store: DynamoContactStore;
  beforeAll(async () => {
    aws = await startAwsHarness();
    store = new DynamoContactStore({ documents: aws.clients.documents, itemUpdates: aws.clients.itemUpdates, tableName: aws.names.contactsTable });
  });
  afterAll(() => aws.stop());

  it('never returns a record that no longer names the id its index entry was found by', async () => {
    const states = new ContactStates({ store, registry: createRegistry(), cacheMs: 0 });
    const mover = await states.observe(LINE, message('wamid.LAG1', T, { from: '15550009001' }));
    expect(mover).toBeDefined();
    // As DynamoDB's index can for a moment after a number change: the item says the new number, the index the old one.
    await aws.clients.documents.send(
      new UpdateCommand({ TableName: aws.names.contactsTable, Key: { pk: `contact#${LINE}#${mover!.contactId}` }, UpdateExpression: 'SET waId = :n', ExpressionAttributeValues: { ':n': '15550009002' } }),
    );
    expect(await store.find(LINE, { waId: '15550009001' }, { direct: false })).toBeUndefined();
  });
});
