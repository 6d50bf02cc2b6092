import { DynamoOutboundStore } from '../../src/outbound/dynamo-outbound-store';
import { bodyHash, outboundId } from '../../src/outbound/record';
import { createRegistry } from '../../src/observability/metrics';
import { wamidDigest } from '../../src/privacy/pseudonyms';
import { startAwsHarness, type AwsHarness } from '../support/aws';

let aws: AwsHarness;
let now = Date.parse('2026-11-30T12:00:00Z');
let store: DynamoOutboundStore;
const registry = createRegistry({ defaultMetrics: false });

beforeAll(async () => {
  aws = await startAwsHarness();
  store = new DynamoOutboundStore({ documents: aws.clients.documents, tableName: aws.names.outboundTable, retentionDays: 30, registry, clock: () => now });
});
afterAll(() => aws.stop());

let n = 0;
async function created(lineId = 'line-a') {
  const key = `key-${n++}`;
  const id = outboundId(lineId, key);
  const body = { type: 'text', text: { body: 'hi' } };
  await store.create({ id, lineId, idempotencyKey: key, to: '16505551234', bodyHash: bodyHash('16505551234', body), body, type: 'text', source: 'api' });
  return id;
}

describe('DynamoOutboundStore', () => {
  it('create is a conditional put: the second create returns the first record untouched', async () => {
    const id = await created();
    const again = await store.create({ id, lineId: 'line-a', idempotencyKey: 'other', to: '1', bodyHash: 'different', body: { type: 'image' }, type: 'image', source: 'cli' });
    expect(again.created).toBe(false);
    expect(again.record).toMatchObject({ id, status: 'queued', type: 'text', source: 'api', attempts: 0 });
    // The indexed contact key never holds the number itself.
    expect(again.record.contactKey).toMatch(/^line-a#[0-9a-f]{24}$/);
    expect(JSON.stringify(again.record.contactKey)).not.toContain('16505551234');
  });

  it('statuses only move forward: a late sent or delivered never overwrites read; failed is terminal', async () => {
    const id = await created();
    expect((await store.claim(id, 10_000)).claimed).toBe(true);
    expect(await store.markSent(id, 'wamid.one')).toBe(true);
    expect((await store.settle({ lineId: 'line-a', id, wamid: 'wamid.one', status: 'read' }))!.status).toBe('read');
    expect((await store.settle({ lineId: 'line-a', id, wamid: 'wamid.one', status: 'sent' }))!.status).toBe('read');
    expect((await store.settle({ lineId: 'line-a', id, wamid: 'wamid.one', status: 'delivered' }))!.status).toBe('read');
    expect(await store.markSent(id, 'wamid.two')).toBe(false);
    const record = (await store.get(id))!;
    expect(record).toMatchObject({ status: 'read', wamid: wamidDigest('wamid.one') });
    expect(record.journey.map((j) => j.step)).toEqual(['queued', 'sending', 'sent', 'read']);

    const failed = await created();
    await store.claim(failed, 10_000);
    expect(await store.markFailed(failed, { code: 131047, title: 'Re-engagement message' })).toBe(true);
    expect((await store.settle({ lineId: 'line-a', id: failed, wamid: 'wamid.x', status: 'read' }))!.status).toBe('failed');
    expect((await store.get(failed))!.error).toEqual({ code: 131047, title: 'Re-engagement message' });
  });

  it('a status found by wamid settles the record; another line\'s status does not', async () => {
    const id = await created('line-b');
    await store.claim(id, 10_000);
    await store.markSent(id, 'wamid.by-index');
    expect((await store.findByWamid('wamid.by-index'))?.id).toBe(id);
    // Stored as its digest only (a wamid carries the recipient's number); the lookup hashes its input.
    const record = (await store.get(id))!;
    expect(record.wamid).toBe(wamidDigest('wamid.by-index'));
    expect(JSON.stringify(record)).not.toContain('wamid.by-index');
    expect(await store.settle({ lineId: 'line-other', wamid: 'wamid.by-index', status: 'delivered' })).toBeUndefined();
    expect((await store.settle({ lineId: 'line-b', wamid: 'wamid.by-index', status: 'delivered' }))!.status).toBe('delivered');
    expect(await store.settle({ lineId: 'line-b', wamid: 'wamid.unknown', status: 'delivered' })).toBeUndefined();
  });

  it('claims: queued once; a held claim refuses; an uncertain record only after its grace, as a resend', async () => {
    const id = await created();
    const first = await store.claim(id, 5000);
    expect(first).toMatchObject({ claimed: true, resend: false });
    expect((await store.claim(id, 5000)).claimed).toBe(false);
    expect(await store.markUncertain(id, 3000, 'timeout')).toBe(true);
    expect((await store.claim(id, 5000)).claimed).toBe(false);
    now += 3001;
    const resend = await store.claim(id, 5000);
    expect(resend).toMatchObject({ claimed: true, resend: 'uncertain' });
    if (resend.claimed) expect(resend.record.attempts).toBe(2);

    // A status during the grace period settles it: no claim afterwards.
    const settled = await created();
    await store.claim(settled, 5000);
    await store.markUncertain(settled, 3000, 'http_500');
    await store.settle({ lineId: 'line-a', id: settled, wamid: 'wamid.s', status: 'sent' });
    now += 3001;
    const refused = await store.claim(settled, 5000);
    expect(refused).toMatchObject({ claimed: false, record: { status: 'sent', wamid: wamidDigest('wamid.s') } });

    // A claim that lapsed (the sender died) can be taken again, and says so.
    const lapsed = await created();
    await store.claim(lapsed, 2000);
    now += 2001;
    expect(await store.claim(lapsed, 2000)).toMatchObject({ claimed: true, resend: 'lapsed_claim' });

    // A clean refusal gives it back at once.
    const released = await created();
    await store.claim(released, 5000);
    expect(await store.release(released, 'rate_limited 130429')).toBe(true);
    expect(await store.claim(released, 5000)).toMatchObject({ claimed: true, resend: false });
  });

  it('counts its writes (what bench:outbound reports per reply)', async () => {
    const values = (await registry.getSingleMetric('wa_ingress_outbound_store_writes_total')!.get()).values;
    const applied = values.filter((v) => v.labels.result === 'applied').reduce((s, v) => s + v.value, 0);
    expect(applied).toBeGreaterThan(10);
  });
});
