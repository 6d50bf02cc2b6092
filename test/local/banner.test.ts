import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { embeddedBanner } from '../../src/local/embedded';
import { freePort, startMain, waitFor } from '../support/child';

const OPERATOR = { verifyToken: 'operator-verify-token-4b1d', appSecrets: ['operator-app-secret-9f2e', 'operator-second-secret-77aa'] };
const LOCAL = { verifyToken: 'local-0123', appSecret: 'generated-app-secret-5c3d', outboundKey: 'local-outbound-key', consoleToken: 'wac_local-console-token' };
const base = { webhookUrl: 'http://127.0.0.1:1/webhooks/whatsapp', local: LOCAL, dataDir: '.data', queueUrl: 'q', dlqUrl: 'd' };

describe('embedded default banner', () => {
  it.each([
    ['nothing given', {}, [LOCAL.verifyToken, LOCAL.appSecret], []],
    ['the operator’s app secrets', { appSecrets: OPERATOR.appSecrets }, [LOCAL.verifyToken], [LOCAL.appSecret, ...OPERATOR.appSecrets]],
    ['the operator’s verify token', { verifyToken: OPERATOR.verifyToken, appSecrets: [] }, [LOCAL.appSecret], [LOCAL.verifyToken, OPERATOR.verifyToken]],
  ])('with %s, prints only what it generated', (_name, operator, shown, hidden) => {
    const text = embeddedBanner({ ...base, operator: { appSecrets: [], ...operator } });
    for (const value of shown) expect(text).toContain(`${value} (local only, from ${join('.data', 'local-secrets.json')})`);
    for (const value of hidden) expect(text).not.toContain(value);
  });

  it('prints the console URL, and its token only when generated locally', () => {
    const running = { url: 'http://127.0.0.1:8081/console/' };
    const local = embeddedBanner({ ...base, operator: { appSecrets: [] }, console: { ...running, operatorToken: false } });
    expect(local).toContain(`console:       ${running.url}`);
    expect(local).toContain(`console token: ${LOCAL.consoleToken} (local only`);
    const operator = embeddedBanner({ ...base, operator: { appSecrets: [] }, console: { ...running, operatorToken: true } });
    expect(operator).toContain('console token: (from CONSOLE_TOKEN, not shown)');
    expect(operator).not.toContain(LOCAL.consoleToken);
    expect(embeddedBanner({ ...base, operator: { appSecrets: [] } })).not.toContain('console');
  });

  it('`node dist/main.js all` with WHATSAPP_APP_SECRETS and no SQS_QUEUE_URL never prints the operator’s secret', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'wa-ingress-banner-'));
    const port = await freePort();
    const gateway = startMain('all', {
      PATH: process.env.PATH,
      DATA_DIR: dataDir,
      PORT: String(port),
      CONSOLE_PORT: String(await freePort()),
      LOG_LEVEL: 'info',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      WHATSAPP_APP_SECRETS: OPERATOR.appSecrets.join(','),
    });
    try {
      await waitFor(async () => gateway.output().includes('DLQ:'), 30_000, 'the banner');
      const output = gateway.output();
      for (const secret of OPERATOR.appSecrets) expect(output).not.toContain(secret);
      expect(output).toContain('app secret:    (from WHATSAPP_APP_SECRETS, not shown)');
      const local = JSON.parse(readFileSync(join(dataDir, 'local-secrets.json'), 'utf8')) as { verifyToken: string };
      expect(output).toContain(`verify token:  ${local.verifyToken} (local only`);
    } finally {
      gateway.process.kill('SIGTERM');
      await gateway.exited;
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
