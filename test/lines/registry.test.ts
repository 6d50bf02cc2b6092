import { DeleteCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { createServer, type Server } from 'node:http';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { parseLines, maskLine, upsertLines } from '../../src/lines/admin';
import { CachedLineRegistry } from '../../src/lines/registry';
import { ReferenceSecretResolver } from '../../src/lines/secrets';
import { DynamoLineStore } from '../../src/lines/store';
import { PermanentError } from '../../src/errors';
import { createRegistry } from '../../src/observability/metrics';
import { startAwsHarness, type AwsHarness } from '../support/aws';

let aws: AwsHarness;
let store: DynamoLineStore;

const line = (id: string, phoneNumberId: string, extra: object = {}) => ({
  lineId: id,
  phoneNumberId,
  wabaId: 'waba-1',
  displayPhoneNumber: '15550001111',
  appSecrets: ['env:WA_LINE_SECRET_APP_A'],
  bird: { transport: 'flow' as const, flowUrl: 'https://flows.example/hook', flowSecret: 'secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:flow' },
  ...extra,
});

beforeAll(async () => {
  aws = await startAwsHarness();
  store = new DynamoLineStore({ documents: aws.clients.documents, tableName: aws.names.linesTable });
  await upsertLines(store, parseLines([line('alpha', '1001'), line('beta', '1002')], { production: true }));
});
afterAll(async () => aws.stop());

/** Counts the DynamoDB calls a store makes, by command name, without changing what it does. */
function countingStore() {
  const calls: Record<string, number> = {};
  const documents = aws.clients.documents;
  const counting = new Proxy(documents, {
    get(target, prop, receiver) {
      if (prop === 'send') {
        return (command: { constructor: { name: string } }) => {
          calls[command.constructor.name] = (calls[command.constructor.name] ?? 0) + 1;
          return target.send(command as never);
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
  return { store: new DynamoLineStore({ documents: counting, tableName: aws.names.linesTable }), calls };
}

describe('line store and registry on DynamoDB', () => {
  it('finds lines by lineId and by phoneNumberId without scanning', async () => {
    const { store: s, calls } = countingStore();
    expect((await s.getById('alpha'))?.phoneNumberId).toBe('1001');
    expect((await s.getByPhoneNumberId('1002'))?.lineId).toBe('beta');
    expect(await s.getByPhoneNumberId('404')).toBeUndefined();
    expect(calls).toEqual({ GetCommand: 1, QueryCommand: 2 });
  });

  it('caches hits for the TTL and misses for a shorter negative TTL', async () => {
    const { store: s, calls } = countingStore();
    let now = 0;
    const registry = new CachedLineRegistry({ store: s, ttlMs: 30_000, negativeTtlMs: 1_000, clock: () => now, registry: createRegistry({ defaultMetrics: false }) });
    for (let i = 0; i < 100; i++) {
      expect((await registry.byPhoneNumberId('1001'))?.lineId).toBe('alpha');
      expect(await registry.byPhoneNumberId('9999')).toBeUndefined();
    }
    expect(calls.QueryCommand).toBe(2);
    now = 1_500; // negative entry lapsed, positive still fresh
    await registry.byPhoneNumberId('1001');
    await registry.byPhoneNumberId('9999');
    expect(calls.QueryCommand).toBe(3);
    now = 40_000;
    await registry.byPhoneNumberId('1001');
    expect(calls.QueryCommand).toBe(4);
  });

  it('sees a newly registered line once the negative entry lapses, and disable takes effect', async () => {
    let now = 0;
    const registry = new CachedLineRegistry({ store, ttlMs: 10_000, negativeTtlMs: 500, clock: () => now });
    expect(await registry.byId('gamma')).toBeUndefined();
    await store.put(parseLines(line('gamma', '1003'), { production: false })[0]!);
    expect(await registry.byId('gamma')).toBeUndefined();
    now = 600;
    expect((await registry.byId('gamma'))?.active).toBe(true);
    expect(await store.setActive('gamma', false)).toBe(true);
    expect((await store.getById('gamma'))?.active).toBe(false);
    expect(await store.setActive('nobody', false)).toBe(false);
  });

  it('finds the active lines of a WABA through its index, cached, without scanning', async () => {
    await upsertLines(store, parseLines([line('w-1', '2001', { wabaId: 'waba-w' }), line('w-2', '2002', { wabaId: 'waba-w', active: false })], { production: false }));
    const { store: s, calls } = countingStore();
    expect((await s.listByWabaId('waba-w')).map((l) => l.lineId)).toEqual(['w-1', 'w-2']);
    const registry = new CachedLineRegistry({ store: s, ttlMs: 30_000 });
    expect((await registry.activeByWabaId('waba-w')).map((l) => l.lineId)).toEqual(['w-1']);
    expect((await registry.activeByWabaId('waba-w')).map((l) => l.lineId)).toEqual(['w-1']);
    expect(await registry.activeByWabaId('waba-none')).toEqual([]);
    expect(calls).toEqual({ QueryCommand: 3 });
  });

  it('an invalid line item is PermanentError(line_invalid) naming the fields, not their values, and costs one table read per negative TTL', async () => {
    const flowSecret = 'literal-flow-secret-of-a-broken-line';
    const item = { ...line('broken', '3003'), bird: { transport: 'flow', flowUrl: 'not a url', flowSecret }, active: 'yes' };
    await aws.clients.documents.send(new PutCommand({ TableName: aws.names.linesTable, Item: item }));
    try {
      const { store: s, calls } = countingStore();
      let now = 0;
      const metrics = createRegistry({ defaultMetrics: false });
      const registry = new CachedLineRegistry({ store: s, ttlMs: 30_000, negativeTtlMs: 1_000, clock: () => now, registry: metrics });
      for (let i = 0; i < 20; i++) {
        const error = await registry.byPhoneNumberId('3003').catch((e: unknown) => e);
        expect(error).toBeInstanceOf(PermanentError);
        expect(error).toMatchObject({ reason: 'line_invalid', message: expect.stringContaining('bird.flowUrl') });
        expect((error as Error).message).toContain('active');
        expect((error as Error).message).not.toContain(flowSecret);
      }
      await expect(Promise.all([1, 2, 3].map(() => registry.byId('broken')))).rejects.toMatchObject({ reason: 'line_invalid' });
      expect(calls).toEqual({ QueryCommand: 1, GetCommand: 1 });
      now = 1_500; // the negative TTL is over: the table is read again (someone may have fixed the item)
      await expect(registry.byPhoneNumberId('3003')).rejects.toMatchObject({ reason: 'line_invalid' });
      expect(calls.QueryCommand).toBe(2);
      const counted = (await metrics.getSingleMetric('wa_ingress_line_store_lookups_total')?.get())?.values.filter((v) => v.labels.result === 'invalid');
      expect(counted?.reduce((sum, v) => sum + v.value, 0)).toBe(3);
    } finally {
      await aws.clients.documents.send(new DeleteCommand({ TableName: aws.names.linesTable, Key: { lineId: 'broken' } }));
    }
  });

  it('unknown ids cost one table read per id per negative TTL, concurrent lookups included', async () => {
    const { store: s, calls } = countingStore();
    let now = 0;
    const registry = new CachedLineRegistry({ store: s, ttlMs: 30_000, negativeTtlMs: 1_000, clock: () => now });
    expect(await Promise.all(Array.from({ length: 10 }, () => registry.byId('nobody-here')))).toEqual(Array(10).fill(undefined));
    for (let i = 0; i < 10; i++) expect(await registry.byId('nobody-here')).toBeUndefined();
    expect(calls).toEqual({ GetCommand: 1 });
    now = 999;
    await registry.byId('nobody-here');
    expect(calls).toEqual({ GetCommand: 1 });
  });

  it('evicts the least recently used entry when full, not the whole cache', async () => {
    const { store: s, calls } = countingStore();
    const registry = new CachedLineRegistry({ store: s, ttlMs: 30_000, maxEntries: 3 });
    await registry.byId('alpha');
    await registry.byId('beta');
    await registry.byId('missing-1');
    expect(calls.GetCommand).toBe(3);
    await registry.byId('alpha'); // a hit: alpha is now the most recently used
    expect(calls.GetCommand).toBe(3);
    await registry.byId('missing-2'); // full: beta, the least recently used, goes
    expect(calls.GetCommand).toBe(4);
    await registry.byId('alpha');
    await registry.byId('missing-1');
    expect(calls.GetCommand).toBe(4); // still cached
    expect((await registry.byId('beta'))?.lineId).toBe('beta');
    expect(calls.GetCommand).toBe(5); // evicted, read again
  });

  it('lists every line (the operator CLI, the only scan)', async () => {
    expect((await store.list()).map((l) => l.lineId)).toEqual(expect.arrayContaining(['alpha', 'beta']));
    const raw = await aws.clients.documents.send(new ScanCommand({ TableName: aws.names.linesTable }));
    expect(raw.Items?.every((i) => typeof i.updatedAt === 'string')).toBe(true);
  });
});

describe('line definitions', () => {
  it('refuses literal secrets in production and names the fields', () => {
    expect(() => parseLines(line('x', '1', { appSecrets: ['plain'], accessToken: 'EAAB' }), { production: true })).toThrow(
      /literal secrets are refused.*appSecrets\[0\], accessToken/,
    );
    expect(parseLines(line('x', '1', { appSecrets: ['plain'] }), { production: false })).toHaveLength(1);
  });

  it('refuses bad ids and unknown transports with the field named', () => {
    expect(() => parseLines(line('not url safe/', '1'), { production: false })).toThrow(/lineId/);
    expect(() => parseLines(line('x', 'abc'), { production: false })).toThrow(/phoneNumberId/);
    expect(() => parseLines({ ...line('x', '1'), bird: { transport: 'smoke' } }, { production: false })).toThrow(/bird/);
    expect(() => parseLines([line('x', '1'), line('x', '2')], { production: false })).toThrow(/defined twice/);
  });

  it('takes a turn policy on a flow line only, within its bounds', () => {
    const turn = { quietMs: 1500, maxWaitMs: 8000, maxMessages: 20 };
    expect(parseLines(line('x', '1', { turn }), { production: false })[0]!.turn).toEqual(turn);
    expect(parseLines(line('x', '1'), { production: false })[0]!.turn).toBeUndefined();
    const conversations = { transport: 'conversations', workspaceId: 'w', channelId: 'c', accessKey: 'k' };
    expect(() => parseLines(line('x', '1', { turn, bird: conversations }), { production: false })).toThrow(/turn applies to flow lines only/);
    expect(() => parseLines(line('x', '1', { turn: { ...turn, quietMs: 9000 } }), { production: false })).toThrow(/turn.quietMs: quietMs must not exceed maxWaitMs/);
    expect(() => parseLines(line('x', '1', { turn: { ...turn, maxWaitMs: 901_000 } }), { production: false })).toThrow(/turn.maxWaitMs/);
    expect(() => parseLines(line('x', '1', { turn: { ...turn, maxMessages: 51 } }), { production: false })).toThrow(/turn.maxMessages/);
  });

  it('masks literal secrets but keeps references when printing', () => {
    const masked = maskLine(parseLines(line('x', '1', { appSecrets: ['plain-secret', 'env:WA_LINE_SECRET_A'], accessToken: 'EAABtoken' }), { production: false })[0]!);
    const text = JSON.stringify(masked);
    expect(text).not.toContain('plain-secret');
    expect(text).not.toContain('EAABtoken');
    expect(masked.appSecrets).toEqual(['****', 'env:WA_LINE_SECRET_A']);
    expect(text).toContain('secretsmanager:arn:aws:secretsmanager');
  });
});

describe('secret references', () => {
  let server: Server;
  let endpoint: string;
  const requests: Array<{ target: string; secretId: string }> = [];

  beforeAll(async () => {
    // A loopback stand-in speaking Secrets Manager's JSON protocol (X-Amz-Target: secretsmanager.GetSecretValue).
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const { SecretId } = JSON.parse(body) as { SecretId: string };
        requests.push({ target: String(req.headers['x-amz-target']), secretId: SecretId });
        res.setHeader('content-type', 'application/x-amz-json-1.1');
        if (SecretId.endsWith(':missing')) {
          res.statusCode = 400;
          res.end(JSON.stringify({ __type: 'ResourceNotFoundException', message: 'not found' }));
          return;
        }
        res.end(JSON.stringify({ ARN: SecretId, Name: 'flow', SecretString: `value-of-${SecretId.split(':').pop()}` }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('resolves env:, secretsmanager: (cached) and refuses literals in production', async () => {
    let now = 0;
    const sm = new SecretsManagerClient({ region: 'us-east-1', endpoint, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    const resolver = new ReferenceSecretResolver({ production: true, env: { WA_LINE_SECRET_APP_A: 'from-env' }, secretsManager: sm, cacheTtlMs: 60_000, clock: () => now });
    expect(await resolver.resolve('env:WA_LINE_SECRET_APP_A')).toBe('from-env');
    await expect(resolver.resolve('env:WA_LINE_SECRET_NOPE')).rejects.toMatchObject({ reason: 'secret_env_missing', retryable: false });
    await expect(resolver.resolve('plain')).rejects.toMatchObject({ reason: 'secret_literal_refused' });
    expect(await resolver.resolve('secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:flow')).toBe('value-of-flow');
    expect(await resolver.resolve('secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:flow')).toBe('value-of-flow');
    expect(requests).toEqual([{ target: 'secretsmanager.GetSecretValue', secretId: 'arn:aws:secretsmanager:us-east-1:1:secret:flow' }]);
    now = 61_000;
    await resolver.resolve('secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:flow');
    expect(requests).toHaveLength(2);
    await expect(resolver.resolve('secretsmanager:arn:x:missing')).rejects.toMatchObject({ retryable: true });
    sm.destroy();
  });
});
