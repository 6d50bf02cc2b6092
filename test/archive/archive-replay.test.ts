import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { ArchiveObjects } from '../../src/archive/archive-objects';
import { recordsInRange } from '../../src/archive/archive-range';
import { bodyBytes, keyStart } from '../../src/archive/archive-record';
import { sign } from '../../src/ingress/signature';
import { parseLines, upsertLines } from '../../src/lines/admin';
import { CachedLineRegistry } from '../../src/lines/registry';
import { ReferenceSecretResolver } from '../../src/lines/secrets';
import { DynamoLineStore } from '../../src/lines/store';
import { createRegistry } from '../../src/observability/metrics';
import { startWorker } from '../../src/worker';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { freePort, productionLikeEnv, startMain, waitFor, type Child } from '../support/child';
import { httpRequest, keepAliveAgent } from '../support/http';
import { APP_SECRET, VERIFY_TOKEN } from '../support/ingress';
import { capturedLogger } from '../support/logs';
import { startTcpRelay } from '../support/tcp-relay';
import { countByKey, lineFor, queueDepth, startRemoteStandIns, textMessage, webhookPayload, workerConfig, LINES, type RemoteStandIns } from '../support/worker';

const execFileAsync = promisify(execFile);
const REPLAY_JS = resolve(__dirname, '../../dist/cli/replay.js');
const FLUSH_MS = 250;

let aws: AwsHarness;
let remote: RemoteStandIns;
let objects: ArchiveObjects;
const children: Child[] = [];

beforeAll(async () => {
  aws = await startAwsHarness({ fifo: true });
  remote = await startRemoteStandIns();
  objects = new ArchiveObjects({ s3: aws.clients.s3, bucket: aws.names.bucket });
  const store = new DynamoLineStore({ documents: aws.clients.documents, tableName: aws.names.linesTable });
  await upsertLines(store, parseLines([lineFor('doc', remote.bird.flowUrl())], { production: false }));
});
afterAll(async () => {
  for (const child of children) child.process.kill('SIGKILL');
  await remote.stop();
  await aws.stop();
});

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return productionLikeEnv(aws, { WHATSAPP_VERIFY_TOKEN: VERIFY_TOKEN, WHATSAPP_APP_SECRETS: APP_SECRET, ARCHIVE_FLUSH_MS: String(FLUSH_MS), ...extra });
}

async function startIngressProcess(extra: Record<string, string> = {}): Promise<{ child: Child; url: string }> {
  const port = await freePort();
  const child = startMain('ingress', env({ PORT: String(port), ...extra }));
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, 15_000, `the ingress on ${port}:\n${child.output()}`);
  return { child, url };
}

function signedPost(url: string, body: string): Promise<Response> {
  return fetch(`${url}/webhooks/whatsapp`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(APP_SECRET, body) } });
}

async function archivedRequestIds(from: Date, to: Date): Promise<string[]> {
  const ids: string[] = [];
  for await (const item of recordsInRange(objects, from, to)) ids.push(item.record!.requestId);
  return ids;
}

async function replay(from: Date, to: Date): Promise<Record<string, string>> {
  const { stdout } = await execFileAsync(process.execPath, [REPLAY_JS, '--from', from.toISOString(), '--to', to.toISOString()], { env: env() });
  return Object.fromEntries(stdout.split('\n').map((l) => l.trim().split(/:\s+/) as [string, string]).filter(([k, v]) => k && v !== undefined));
}

describe('archive and replay through the running ingress', () => {
  it('10 signed messages, queue purged: Bird gets nothing; a replay delivers the 10 once; a second delivers nothing; a tampered record is skipped', async () => {
    const { child, url: ingressUrl } = await startIngressProcess();
    const from = new Date(Date.now() - 1000);
    const senders = ['16505550101', '16505550102'];
    for (let i = 0; i < 10; i++) {
      const body = webhookPayload([{ changes: [{ phoneNumberId: LINES.doc.phoneNumberId, messages: [{ ...textMessage(`wamid.replay.${i}`), from: senders[i % 2] }] }] }]);
      expect((await signedPost(ingressUrl, body)).status).toBe(200);
    }
    const to = new Date(Date.now() + 1000);
    await waitFor(async () => (await archivedRequestIds(from, to)).length === 10, 5000, 'the 10 payloads in the archive');
    // Lose the queue's copies, as a purge does (receive and delete all: the stand-in's PurgeQueue left them here).
    await aws.drainQueue();
    expect(await queueDepth(aws)).toBe(0);

    const registry = createRegistry({ defaultMetrics: false });
    const config = workerConfig(aws, remote.graph);
    const lines = new CachedLineRegistry({ store: new DynamoLineStore({ documents: aws.clients.documents, tableName: config.dynamodb.linesTable }), ttlMs: 0, registry });
    const worker = startWorker({ config, clients: aws.clients, lines, secrets: new ReferenceSecretResolver({ production: false, cacheTtlMs: 0, env: {} }), registry, logger: capturedLogger('warn').logger });
    try {
      await new Promise((r) => setTimeout(r, 1500));
      expect(remote.bird.received()).toHaveLength(0);

      const first = await replay(from, to);
      expect(first).toMatchObject({ read: '10', verified: '10', enqueued: '10', skipped: '0' });
      await waitFor(async () => remote.bird.received().length >= 10 && (await queueDepth(aws)) === 0, 15_000, 'the 10 at Bird');
      const keys = countByKey(remote.bird.received());
      expect(keys.size).toBe(10);
      expect([...keys.values()].every((n) => n === 1)).toBe(true);
      // Receive order within each conversation (FIFO group).
      const order = remote.bird.received().map((c) => (c.body as { message: { id: string } }).message.id);
      for (const parity of [0, 1]) {
        const mine = order.filter((id) => Number(id.split('.').pop()) % 2 === parity);
        expect(mine).toEqual([...mine].sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop())));
      }

      // Tamper with one archived body (its signature no longer matches).
      const [ref] = await collect(objects.list('archive/'));
      const records = (await objects.read(ref!.key)).map((r) => r!);
      records[0] = { ...records[0]!, body: bodyBytes(records[0]!).toString('utf8').replace('text of', 'TAMPERED') };
      await objects.rewrite(ref!.key, records, []);

      const handledBefore = await handled(registry);
      const second = await replay(from, to);
      expect(second).toMatchObject({ read: '10', verified: '9', enqueued: '9', skipped: '1', signature_mismatch: '1' });
      await waitFor(async () => (await handled(registry)) >= handledBefore + 9 && (await queueDepth(aws)) === 0, 15_000, 'the 9 replayed messages handled');
      expect(remote.bird.received()).toHaveLength(10);
    } finally {
      await worker.stop();
      child.process.kill('SIGTERM');
      await child.exited;
    }
  }, 60_000);

  it('SIGKILL under load: every payload acknowledged more than ARCHIVE_FLUSH_MS and the PUT under way before the kill is in the archive; PUTs and bytes per payload', async () => {
    const { child, url } = await startIngressProcess();
    const from = new Date(Date.now() - 1000);
    const acked: { requestId: string; at: number }[] = [];
    const agent = keepAliveAgent(8);
    let stop = false;
    const poster = async (n: number) => {
      for (let i = 0; !stop && i < 5000; i++) {
        const body = webhookPayload([{ changes: [{ phoneNumberId: LINES.doc.phoneNumberId, messages: [{ ...textMessage(`wamid.kill.${n}.${i}`), from: `1650555${String(n).padStart(4, '0')}` }] }] }]);
        const res = await httpRequest(agent, `${url}/webhooks/whatsapp`, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(APP_SECRET, body) },
        }).catch(() => undefined);
        if (!res) return;
        if (res.status === 200) acked.push({ requestId: String(res.headers['x-request-id']), at: Date.now() });
      }
    };
    const posters = Array.from({ length: 8 }, (_, n) => poster(n));
    // Enough acknowledged well before the kill, whatever the machine's speed: those are the ones the archive owes.
    await waitFor(async () => acked.filter((a) => a.at < Date.now() - 2 * FLUSH_MS).length > 250, 30_000, 'payloads acknowledged more than ARCHIVE_FLUSH_MS ago');
    const killedAt = Date.now();
    child.process.kill('SIGKILL');
    stop = true;
    await child.exited;
    await Promise.all(posters);
    agent.destroy();

    const archived = new Set(await archivedRequestIds(from, new Date()));
    // A payload is durable in the archive once its flush's PUT returns: up to FLUSH_MS after its 200, plus
    // that PUT (on a loaded machine s3rver can take a few hundred ms): a second window covers it.
    const due = acked.filter((a) => a.at < killedAt - 2 * FLUSH_MS);
    expect(due.length).toBeGreaterThan(200);
    expect(due.filter((a) => !archived.has(a.requestId))).toEqual([]);

    const refs = (await collect(objects.list('archive/'))).filter((ref) => (keyStart(ref.key) ?? 0) >= from.getTime());
    let records = 0;
    let bytes = 0;
    for (const ref of refs) {
      const n = (await objects.read(ref.key)).length;
      records += n;
      bytes += ref.size;
    }
    const killRefs = refs.length;
    process.stdout.write(`archive under load: ${acked.length} acknowledged, ${records} archived in ${killRefs} objects: ${(killRefs / records).toFixed(4)} PUTs/payload, ${(bytes / records).toFixed(0)} bytes/payload (gzip'd)\n`);
    expect(killRefs / records).toBeLessThanOrEqual(0.1);
  }, 60_000);

  it('an S3 outage neither delays nor fails the 200s; the archive catches up when S3 returns', async () => {
    const relay = await startTcpRelay(aws.standIns.endpoints.s3, false);
    try {
      const { child, url } = await startIngressProcess({ AWS_ENDPOINT_URL_S3: relay.url });
      const from = new Date(Date.now() - 1000);
      const ids: string[] = [];
      let slowest = 0;
      for (let i = 0; i < 20; i++) {
        const body = webhookPayload([{ changes: [{ phoneNumberId: LINES.doc.phoneNumberId, messages: [textMessage(`wamid.outage.${i}`)] }] }]);
        const started = Date.now();
        const res = await signedPost(url, body);
        slowest = Math.max(slowest, Date.now() - started);
        expect(res.status).toBe(200);
        ids.push(res.headers.get('x-request-id')!);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(slowest).toBeLessThan(500);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(Number(/wa_ingress_archive_puts_total\{outcome="error"\} (\d+)/.exec(metrics)?.[1] ?? 0)).toBeGreaterThan(0);
      expect(child.output()).toContain('archive_put_failed');

      relay.setUp(true);
      await waitFor(async () => (await archivedRequestIds(from, new Date())).filter((id) => ids.includes(id)).length === 20, 15_000, 'the archive to catch up');
      child.process.kill('SIGTERM');
      await child.exited;
    } finally {
      await relay.stop();
    }
  }, 60_000);
});

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function handled(registry: ReturnType<typeof createRegistry>): Promise<number> {
  const values = (await registry.getSingleMetric('wa_ingress_worker_handler_duration_seconds')?.get())?.values ?? [];
  return values.filter((v) => (v as { metricName?: string }).metricName === 'wa_ingress_worker_handler_duration_seconds_count').reduce((n, v) => n + v.value, 0);
}
