import { sign } from '../../src/ingress/signature';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { freePort, productionLikeEnv, startMain, waitFor } from '../support/child';

const SECRET = 'shutdown-test-secret';
let aws: AwsHarness;

beforeAll(async () => {
  aws = await startAwsHarness();
});
afterAll(async () => aws.stop());

describe('SIGTERM', () => {
  it('drains under load: exits 0 within the bound, and every payload that got 200 is in SQS', async () => {
    const port = await freePort();
    const child = startMain(
      'ingress',
      productionLikeEnv(aws, { PORT: String(port), WHATSAPP_VERIFY_TOKEN: 'v', WHATSAPP_APP_SECRETS: SECRET, SHUTDOWN_TIMEOUT_MS: '10000', LOG_LEVEL: 'info' }),
    );
    const base = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${base}/healthz`)).ok, 15_000, 'the gateway to start');

    const acknowledged: string[] = [];
    let stopLoad = false;
    let counter = 0;
    const sender = async () => {
      while (!stopLoad) {
        const id = `p${counter++}`;
        const body = `{"object":"whatsapp_business_account","entry":[{"id":"${id}","changes":[]}]}`;
        try {
          const res = await fetch(`${base}/webhooks/whatsapp`, { method: 'POST', body, headers: { 'x-hub-signature-256': sign(SECRET, body) } });
          if (res.status === 200) acknowledged.push(body);
          else await res.arrayBuffer();
        } catch {
          // Refused connections after close are expected; nothing was acknowledged for them.
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    const senders = Array.from({ length: 16 }, sender);
    await waitFor(async () => acknowledged.length >= 100, 15_000, 'load to build up');

    const signalledAt = Date.now();
    child.process.kill('SIGTERM');
    const exit = await child.exited;
    const shutdownMs = Date.now() - signalledAt;
    stopLoad = true;
    await Promise.all(senders);

    expect(exit).toEqual({ code: 0, signal: null });
    expect(shutdownMs).toBeLessThan(10_000);
    expect(child.output()).toContain('shutdown complete');
    const queued = new Set((await aws.drainQueue()).map((m) => m.Body));
    const lost = acknowledged.filter((b) => !queued.has(b));
    expect(acknowledged.length).toBeGreaterThanOrEqual(100);
    expect(lost).toEqual([]);
  });
});
