import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sign } from '../../src/ingress/signature';
import { parseLines, upsertLines } from '../../src/lines/admin';
import { DynamoLineStore } from '../../src/lines/store';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { freePort, productionLikeEnv, startMain, waitFor, type Child } from '../support/child';
import { APP_SECRET } from '../support/ingress';
import { LINES, lineFor, startRemoteStandIns, type RemoteStandIns } from '../support/worker';

/**
 * The Meta watcher through the running process (`node dist/main.js all`): the Graph stand-in
 * drifts, and the problem shows in /console/api/lines and in the gauge, then clears when fixed.
 */
const APP_ID = '100000000000001';
const PUBLIC_BASE_URL = 'https://wa.example.com';
const CONSOLE_TOKEN = 'watch-console-token-0123456789';
const LINE = LINES.doc.lineId;

jest.setTimeout(90_000);

let aws: AwsHarness;
let remote: RemoteStandIns;
const children: Child[] = [];

interface Gateway {
  child: Child;
  url: string;
  consoleUrl: string;
}

beforeAll(async () => {
  aws = await startAwsHarness();
  remote = await startRemoteStandIns();
  await upsertLines(new DynamoLineStore({ documents: aws.clients.documents, tableName: aws.names.linesTable }), parseLines([lineFor('doc', remote.bird.flowUrl())], { production: false }));
});

beforeEach(() => {
  remote.graph.watch.reset();
  remote.graph.watch.setDrift({ appCallbackUrl: `${PUBLIC_BASE_URL}/webhooks/whatsapp` });
});

afterAll(async () => {
  for (const child of children) if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
  await remote.stop();
  await aws.stop();
});

async function startGateway(extra: Record<string, string> = {}): Promise<Gateway> {
  const [port, consolePort] = [await freePort(), await freePort()];
  const child = startMain(
    'all',
    productionLikeEnv(aws, {
      PORT: String(port),
      CONSOLE_PORT: String(consolePort),
      CONSOLE_TOKEN,
      WHATSAPP_VERIFY_TOKEN: 'verify-token-under-test',
      WHATSAPP_APP_SECRETS: APP_SECRET,
      WHATSAPP_APP_ID: APP_ID,
      PUBLIC_BASE_URL,
      GRAPH_API_BASE_URL: remote.graph.baseUrl,
      MEDIA_ALLOWED_HOSTS: remote.graph.host,
      META_WATCH_INTERVAL_SECONDS: '1',
      META_WATCH_LEASE_SECONDS: '3',
      SQS_WAIT_TIME_SECONDS: '0',
      SHUTDOWN_TIMEOUT_MS: '5000',
      ...extra,
    }),
  );
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 20_000, 'the gateway ready').catch((error: Error) => {
    throw new Error(`${error.message}; output:\n${child.output().slice(-3000)}`);
  });
  return { child, url, consoleUrl: `http://127.0.0.1:${consolePort}` };
}

async function stop(gateway: Gateway): Promise<void> {
  gateway.child.process.kill('SIGTERM');
  expect(await gateway.child.exited).toEqual({ code: 0, signal: null });
}

async function problemsOf(gateway: Gateway): Promise<{ problem: string; since: string; detail?: string; todo: string }[]> {
  const res = await fetch(`${gateway.consoleUrl}/console/api/lines`, { headers: { authorization: `Bearer ${CONSOLE_TOKEN}` } });
  const body = (await res.json()) as { items: { lineId: string; problems: { problem: string; since: string; detail?: string; todo: string }[] }[] };
  return body.items.find((l) => l.lineId === LINE)?.problems ?? [];
}

async function metric(gateway: Gateway, series: string): Promise<number | undefined> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const gaugeOf = (gateway: Gateway, problem: string) => metric(gateway, `wa_ingress_line_problem{lineId="${LINE}",problem="${problem}"}`);

async function untilShown(gateway: Gateway, problem: string, shown: boolean): Promise<void> {
  await waitFor(
    async () => (await problemsOf(gateway)).some((p) => p.problem === problem) === shown && (await gaugeOf(gateway, problem)) === (shown ? 1 : 0),
    15_000,
    `${problem} ${shown ? 'shown' : 'cleared'} in the console and the gauge`,
  ).catch((error: Error) => {
    throw new Error(`${error.message}; output:\n${gateway.child.output().slice(-3000)}`);
  });
}

describe('the Meta watcher, through the running process', () => {
  let gateway: Gateway;

  beforeAll(async () => {
    gateway = await startGateway();
  });

  afterAll(async () => {
    await stop(gateway);
  });

  it('a healthy line has no problems, and every check shows 0 in the gauge', async () => {
    await waitFor(async () => remote.graph.watch.calls() >= 4, 15_000, 'two watch rounds');
    expect(await problemsOf(gateway)).toEqual([]);
    for (const problem of ['app_not_subscribed', 'callback_elsewhere', 'token_rejected', 'number_not_connected', 'quality_red', 'graph_unreachable', 'inbound_silent']) {
      expect(await gaugeOf(gateway, problem)).toBe(0);
    }
  });

  it('the app dropped from subscribed_apps → app_not_subscribed, with what to do; cleared when subscribed again', async () => {
    remote.graph.watch.setDrift({ subscribed: false });
    await untilShown(gateway, 'app_not_subscribed', true);
    const [shown] = await problemsOf(gateway);
    expect(shown).toMatchObject({ problem: 'app_not_subscribed', detail: `app ${APP_ID} is not in subscribed_apps` });
    expect(Date.parse(shown!.since)).toBeLessThanOrEqual(Date.now());
    expect(shown!.todo).toMatch(/subscribed_apps/);
    remote.graph.watch.setDrift({ subscribed: true });
    await untilShown(gateway, 'app_not_subscribed', false);
  });

  it('a phone number override pointing elsewhere → callback_elsewhere naming only its host; cleared when removed', async () => {
    remote.graph.watch.setDrift({ phoneOverrideUrl: 'https://old-crm.example.net/hooks/whatsapp?secret=abc' });
    await untilShown(gateway, 'callback_elsewhere', true);
    expect((await problemsOf(gateway)).find((p) => p.problem === 'callback_elsewhere')?.detail).toBe('old-crm.example.net');
    expect(gateway.child.output()).not.toContain('secret=abc');
    remote.graph.watch.setDrift({ phoneOverrideUrl: undefined });
    await untilShown(gateway, 'callback_elsewhere', false);
  });

  it('Graph answers 190 → token_rejected, and no second call that round; cleared with a working token', async () => {
    remote.graph.watch.setDrift({ errorCode: 190 });
    await untilShown(gateway, 'token_rejected', true);
    const before = remote.graph.watch.calls();
    await new Promise((r) => setTimeout(r, 2200));
    const rounds = remote.graph.requests().filter((r) => r.kind === 'watch');
    // With the token refused, each round stops after subscribed_apps: one call per round.
    expect(remote.graph.watch.calls() - before).toBeLessThanOrEqual(4);
    expect(rounds.slice(-2).every((r) => r.path.endsWith('/subscribed_apps'))).toBe(true);
    remote.graph.watch.setDrift({ errorCode: undefined });
    await untilShown(gateway, 'token_rejected', false);
  });

  it('the number disconnected and its quality RED → number_not_connected and quality_red; both clear', async () => {
    remote.graph.watch.setDrift({ status: 'DISCONNECTED', qualityRating: 'RED' });
    await untilShown(gateway, 'number_not_connected', true);
    await untilShown(gateway, 'quality_red', true);
    expect((await problemsOf(gateway)).map((p) => [p.problem, p.detail])).toEqual(
      expect.arrayContaining([
        ['number_not_connected', 'status DISCONNECTED'],
        ['quality_red', 'quality_rating RED'],
      ]),
    );
    remote.graph.watch.setDrift({ status: 'CONNECTED', qualityRating: 'GREEN' });
    await untilShown(gateway, 'number_not_connected', false);
    await untilShown(gateway, 'quality_red', false);
  });

  it('two processes → one watcher: one holds the lease, Graph sees one round per interval, and the other takes over when it stops', async () => {
    const second = await startGateway();
    const leaders = async () => [await metric(gateway, 'wa_ingress_watch_leader'), await metric(second, 'wa_ingress_watch_leader')];
    await new Promise((r) => setTimeout(r, 3000));
    expect(await leaders()).toEqual([1, 0]);
    const before = remote.graph.watch.calls();
    const started = Date.now();
    await new Promise((r) => setTimeout(r, 5000));
    const calls = remote.graph.watch.calls() - before;
    const rounds = (Date.now() - started) / 1000;
    // One watcher: two calls per round, a round a second (a second watcher would double it).
    expect(calls).toBeGreaterThanOrEqual(2 * (rounds - 2));
    expect(calls).toBeLessThanOrEqual(2 * (rounds + 1));

    await stop(gateway);
    await waitFor(async () => (await metric(second, 'wa_ingress_watch_leader')) === 1, 10_000, 'the standby takes over');
    const handedOver = remote.graph.watch.calls();
    await waitFor(async () => remote.graph.watch.calls() >= handedOver + 2, 10_000, 'rounds by the new watcher');
    gateway = second;
  });
});

describe('account webhooks, through the running process', () => {
  it('account_update ACCOUNT_DELETED raises number_not_connected at once, with no watcher round', async () => {
    const gateway = await startGateway({ META_WATCH_INTERVAL_SECONDS: '0' });
    try {
      const fixture = JSON.parse(readFileSync(join(__dirname, '../fixtures/meta-webhooks/account-update-deleted.json'), 'utf8')) as { entry: { id: string; time: number }[] };
      fixture.entry[0]!.id = LINES.doc.wabaId;
      fixture.entry[0]!.time = Math.floor(Date.now() / 1000);
      const body = JSON.stringify(fixture);
      const callsBefore = remote.graph.watch.calls();
      const res = await fetch(`${gateway.url}/webhooks/whatsapp`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(APP_SECRET, body) } });
      expect(res.status).toBe(200);
      await untilShown(gateway, 'number_not_connected', true);
      expect((await problemsOf(gateway)).find((p) => p.problem === 'number_not_connected')?.detail).toBe('account_update ACCOUNT_DELETED');
      expect(remote.graph.watch.calls()).toBe(callsBefore);
      expect(gateway.child.output()).toMatch(/line-doc: number_not_connected/);
    } finally {
      await stop(gateway);
    }
  });
});
