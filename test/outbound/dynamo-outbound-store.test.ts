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
  store = new DynamoOutboundStore({ documents: aws.clients.documents, itemUpdates: aws.clients.itemUpdates, tableName: aws.names.outboundTable, retentionDays: 30, registry, clock: () => now });
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
    expect(await store.markSent({ id, attempt: 1 }, 'wamid.one')).toBe(true);
    expect((await store.settle({ lineId: 'line-a', id, wamid: 'wamid.one', status: 'read' }))!.status).toBe('read');
    expect((await store.settle({ lineId: 'line-a', id, wamid: 'wamid.one', status: 'sent' }))!.status).toBe('read');
    expect((await store.settle({ lineId: 'line-a', id, wamid: 'wamid.one', status: 'delivered' }))!.status).toBe('read');
    expect(await store.markSent({ id, attempt: 1 }, 'wamid.two')).toBe(false);
    const record = (await store.get(id))!;
    expect(record).toMatchObject({ status: 'read', wamid: wamidDigest('wamid.one') });
    expect(record.journey.map((j) => j.step)).toEqual(['queued', 'sending', 'sent', 'read']);

    const failed = await created();
    await store.claim(failed, 10_000);
    expect(await store.markFailed({ id: failed, attempt: 1 }, { code: 131047, title: 'Re-engagement message' })).toBe(true);
    expect((await store.settle({ lineId: 'line-a', id: failed, wamid: 'wamid.x', status: 'read' }))!.status).toBe('failed');
    expect((await store.get(failed))!.error).toEqual({ code: 131047, title: 'Re-engagement message' });
  });

  it('pricing: stored with the status; the first status that brings one is pricedNow, once; a late status still brings it when none came; a suppressed reply is terminal', async () => {
    const marketing = { billable: true, pricing_model: 'PMP', category: 'marketing', type: 'regular' };
    const id = await created();
    await store.claim(id, 10_000);
    await store.markSent({ id, attempt: 1 }, 'wamid.priced');
    const first = await store.settle({ lineId: 'line-a', id, wamid: 'wamid.priced', status: 'sent', pricing: marketing });
    expect(first).toMatchObject({ status: 'sent', pricing: marketing, pricedNow: true });
    const second = await store.settle({ lineId: 'line-a', id, wamid: 'wamid.priced', status: 'delivered', pricing: { ...marketing, type: 'free_customer_service' } });
    expect(second).toMatchObject({ status: 'delivered', pricing: { type: 'free_customer_service' } });
    expect(second!.pricedNow).toBeUndefined();
    // The same status again (a redelivery): refused, not counted again.
    expect((await store.settle({ lineId: 'line-a', id, wamid: 'wamid.priced', status: 'delivered', pricing: marketing }))!.pricedNow).toBeUndefined();

    const overtaken = await created();
    await store.claim(overtaken, 10_000);
    await store.markSent({ id: overtaken, attempt: 1 }, 'wamid.overtaken');
    await store.settle({ lineId: 'line-a', id: overtaken, wamid: 'wamid.overtaken', status: 'read' });
    const late = await store.settle({ lineId: 'line-a', id: overtaken, wamid: 'wamid.overtaken', status: 'delivered', pricing: marketing });
    expect(late).toMatchObject({ status: 'read', pricing: marketing, pricedBy: 'delivered', pricedNow: true });
    expect((await store.settle({ lineId: 'line-a', id: overtaken, wamid: 'wamid.overtaken', status: 'delivered', pricing: marketing }))!.pricedNow).toBeUndefined();

    const held = await created();
    await store.claim(held, 10_000);
    expect(await store.markSuppressed({ id: held, attempt: 1 }, 'paused')).toBe(true);
    expect(await store.markSent({ id: held, attempt: 1 }, 'wamid.never')).toBe(false);
    expect(await store.get(held)).toMatchObject({ status: 'suppressed', suppressedReason: 'paused' });
    expect((await store.get(held))!.journey.map((j) => j.step)).toEqual(['queued', 'sending', 'suppressed']);
  });

  it('a status found by wamid settles the record; another line\'s status does not', async () => {
    const id = await created('line-b');
    await store.claim(id, 10_000);
    await store.markSent({ id, attempt: 1 }, 'wamid.by-index');
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
    expect(await store.markUncertain({ id, attempt: 1 }, 3000, 'timeout')).toBe(true);
    expect((await store.claim(id, 5000)).claimed).toBe(false);
    now += 3001;
    const resend = await store.claim(id, 5000);
    expect(resend).toMatchObject({ claimed: true, resend: 'uncertain' });
    if (resend.claimed) expect(resend.record.attempts).toBe(2);

    // A status during the grace period settles it: no claim afterwards.
    const settled = await created();
    await store.claim(settled, 5000);
    await store.markUncertain({ id: settled, attempt: 1 }, 3000, 'http_500');
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
    expect(await store.release({ id: released, attempt: 1 }, 'rate_limited 130429')).toBe(true);
    expect(await store.claim(released, 5000)).toMatchObject({ claimed: true, resend: false });
  });

  it('fences by the claim: a sender that paused past its lease cannot overwrite the claim that took over', async () => {
    const id = await created();
    const stale = await store.claim(id, 2000);
    expect(stale).toMatchObject({ claimed: true, record: { attempts: 1 } });
    now += 2001;
    const owner = await store.claim(id, 2000);
    expect(owner).toMatchObject({ claimed: true, resend: 'lapsed_claim', record: { attempts: 2 } });
    const staleFence = { id, attempt: 1 };
    expect(await store.markUncertain(staleFence, 3000, 'timeout')).toBe(false);
    expect(await store.release(staleFence, 'rate_limited 130429')).toBe(false);
    expect(await store.markSent(staleFence, 'wamid.stale')).toBe(false);
    expect(await store.markFailed(staleFence, { code: 131047, title: 'late' })).toBe(false);
    expect(await store.get(id)).toMatchObject({ status: 'sending', attempts: 2 });
    // The owner's own writes still apply.
    expect(await store.markSent({ id, attempt: 2 }, 'wamid.owner')).toBe(true);
    expect(await store.get(id)).toMatchObject({ status: 'sent', wamid: wamidDigest('wamid.owner') });
  });

  it('counts ambiguous sends; without a grace the record is parked uncertain and no claim takes it', async () => {
    const id = await created();
    await store.claim(id, 5000);
    expect(await store.markUncertain({ id, attempt: 1 }, 1000, 'timeout')).toBe(true);
    now += 1001;
    const resend = await store.claim(id, 5000);
    expect(resend).toMatchObject({ claimed: true, resend: 'uncertain', record: { ambiguousSends: 1, attempts: 2 } });
    expect(await store.markUncertain({ id, attempt: 2 }, undefined, 'timeout')).toBe(true);
    const parked = (await store.get(id))!;
    expect(parked).toMatchObject({ status: 'uncertain', ambiguousSends: 2 });
    expect(parked.retryAt).toBeUndefined();
    now += 86_400_000;
    expect(await store.claim(id, 5000)).toMatchObject({ claimed: false, record: { status: 'uncertain' } });
  });

  async function parkedUncertain(): Promise<string> {
    const id = await created();
    await store.claim(id, 5000);
    await store.markUncertain({ id, attempt: 1 }, undefined, 'timeout');
    return id;
  }

  it('operator resend: claimable for one more send, journaled with who and why; a second decision is refused', async () => {
    const id = await parkedUncertain();
    expect(await store.decide(id, { action: 'resend', actor: 'console', reason: 'checked with the customer' })).toBe(true);
    expect(await store.decide(id, { action: 'mark_sent', actor: 'cli:ops', reason: 'late' })).toBe(false);
    const claim = await store.claim(id, 5000);
    expect(claim).toMatchObject({ claimed: true, resend: 'uncertain', record: { attempts: 2, ambiguousSends: 1 } });
    expect((await store.get(id))!.journey.map((j) => [j.step, j.detail])).toContainEqual(['operator', 'resend allowed by console: checked with the customer']);
    // Its one send is ambiguous again: parked again, never claimed on its own.
    expect(await store.markUncertain({ id, attempt: 2 }, undefined, 'timeout')).toBe(true);
    expect((await store.claim(id, 5000)).claimed).toBe(false);
  });

  it('operator mark-sent: sent with no wamid, who and why in the journey; only on a parked record', async () => {
    const id = await parkedUncertain();
    expect(await store.decide(id, { action: 'mark_sent', actor: 'cli:ops', reason: 'the person confirmed' })).toBe(true);
    const record = (await store.get(id))!;
    expect(record.status).toBe('sent');
    expect(record.wamid).toBeUndefined();
    expect(record.journey.at(-1)).toMatchObject({ step: 'operator', detail: expect.stringContaining('marked sent by cli:ops: the person confirmed') });
    // A later status still moves it forward, and brings the wamid.
    expect(await store.settle({ lineId: 'line-a', id, wamid: 'wamid.late', status: 'delivered' })).toMatchObject({ status: 'delivered', wamid: wamidDigest('wamid.late') });

    // Not parked (waiting for its grace, or queued): no operator decision applies.
    const waiting = await created();
    await store.claim(waiting, 5000);
    await store.markUncertain({ id: waiting, attempt: 1 }, 3000, 'timeout');
    expect(await store.decide(waiting, { action: 'mark_sent', actor: 'console', reason: 'x' })).toBe(false);
    expect(await store.decide(await created(), { action: 'resend', actor: 'console', reason: 'x' })).toBe(false);
  });

  it('a late status settles a parked uncertain record', async () => {
    const id = await parkedUncertain();
    expect(await store.settle({ lineId: 'line-a', id, wamid: 'wamid.came', status: 'sent' })).toMatchObject({ status: 'sent', wamid: wamidDigest('wamid.came') });
    expect(await store.decide(id, { action: 'resend', actor: 'console', reason: 'too late' })).toBe(false);
  });

  it('counts its writes (what bench:outbound reports per reply)', async () => {
    const values = (await registry.getSingleMetric('wa_ingress_outbound_store_writes_total')!.get()).values;
    const applied = values.filter((v) => v.labels.result === 'applied').reduce((s, v) => s + v.value, 0);
    expect(applied).toBeGreaterThan(10);
  });
});
