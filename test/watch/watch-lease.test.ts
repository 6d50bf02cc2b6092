import { DynamoProblemStore } from '../../src/watch/problem-store';
import { DynamoLease } from '../../src/watch/watch-lease';
import { startAwsHarness, type AwsHarness } from '../support/aws';

/** The watcher lease and the problem items on the real dedupe table (dynalite). */
let aws: AwsHarness;
let now = 1_000_000;

beforeAll(async () => {
  aws = await startAwsHarness();
});

afterAll(async () => {
  await aws.stop();
});

const lease = (holder: string) => new DynamoLease({ documents: aws.clients.documents, tableName: aws.names.dedupeTable, holder, leaseMs: 3000, clock: () => now });

describe('the watcher lease', () => {
  it('one holder at a time; renewed by its holder; taken over when it lapses; handed over at once on release', async () => {
    const a = lease('a');
    const b = lease('b');
    expect(await a.acquire()).toBe(true);
    expect(await b.acquire()).toBe(false);
    now += 2000;
    expect(await a.acquire()).toBe(true); // renewal: runs until now + 3000
    now += 2500;
    expect(await b.acquire()).toBe(false);
    now += 600; // a stopped renewing 3.1 s ago
    expect(await b.acquire()).toBe(true);
    expect(await a.acquire()).toBe(false);
    await b.release();
    expect(await a.acquire()).toBe(true);
    await b.release(); // not the holder: changes nothing
    expect(await b.acquire()).toBe(false);
  });
});

describe('the problem items', () => {
  it('keep since from the first sighting, follow the detail, and return what was there before', async () => {
    const store = new DynamoProblemStore({ documents: aws.clients.documents, tableName: aws.names.dedupeTable });
    const t1 = new Date('2026-06-01T10:00:00Z');
    expect(await store.apply('line-x', { checked: ['callback_elsewhere', 'quality_red'], found: { callback_elsewhere: 'a.example' } }, t1)).toEqual([]);
    const before = await store.apply('line-x', { checked: ['callback_elsewhere'], found: { callback_elsewhere: 'b.example' } }, new Date('2026-06-01T10:10:00Z'));
    expect(before).toEqual([{ problem: 'callback_elsewhere', since: t1.toISOString(), detail: 'a.example' }]);
    expect((await store.read(['line-x', 'line-none'])).get('line-x')).toEqual([{ problem: 'callback_elsewhere', since: t1.toISOString(), detail: 'b.example' }]);
    await store.apply('line-x', { checked: ['callback_elsewhere'], found: {} }, new Date());
    expect((await store.read(['line-x'])).has('line-x')).toBe(false);
  });
});
