import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { embeddedDefaultEnv, startMain, waitFor, type Child } from '../support/child';

const DIST = resolve(__dirname, '../../dist');

function runCli(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [join(DIST, script), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}

describe('embedded default (npm start)', () => {
  let dataDir: string;
  let env: NodeJS.ProcessEnv;
  let gateway: Child;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'wa-ingress-embedded-'));
    env = await embeddedDefaultEnv(dataDir);
    gateway = startMain('all', env);
    await waitFor(async () => existsSync(join(dataDir, 'embedded.json')) && (await fetch(`http://127.0.0.1:${env.PORT}/readyz`)).ok, 20_000, 'the embedded gateway');
  });

  afterAll(async () => {
    gateway.process.kill('SIGTERM');
    await gateway.exited;
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints the URLs and verify token, and answers the verify challenge with it', async () => {
    const secrets = JSON.parse(readFileSync(join(dataDir, 'local-secrets.json'), 'utf8')) as { verifyToken: string };
    expect(gateway.output()).toContain(`verify token:  ${secrets.verifyToken}`);
    expect(gateway.output()).toContain(`webhook URL:   http://127.0.0.1:${env.PORT}/webhooks/whatsapp`);
    const res = await fetch(`http://127.0.0.1:${env.PORT}/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=42&hub.verify_token=${secrets.verifyToken}`);
    expect(await res.text()).toBe('42');
  });

  it('starts the console on its own port with a generated token, printed in the banner', async () => {
    const secrets = JSON.parse(readFileSync(join(dataDir, 'local-secrets.json'), 'utf8')) as { consoleToken: string };
    expect(secrets.consoleToken).toMatch(/^wac_[\w-]{32}$/);
    expect(gateway.output()).toContain(`console:       http://127.0.0.1:${env.CONSOLE_PORT}/console/`);
    expect(gateway.output()).toContain(`console token: ${secrets.consoleToken}`);
    const base = `http://127.0.0.1:${env.CONSOLE_PORT}/console`;
    expect((await fetch(`${base}/api/lines`)).status).toBe(401);
    const lines = await fetch(`${base}/api/lines`, { headers: { authorization: `Bearer ${secrets.consoleToken}` } });
    expect(((await lines.json()) as { items: { lineId: string }[] }).items.map((l) => l.lineId)).toEqual(['demo', 'demo-2']);
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('app.js');
    expect((await fetch(`${base}/app.js`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${env.PORT}/console/`)).status).toBe(404);
  });

  it('takes a simulated image all the way to the Bird inbox, media stored in S3 and linked', async () => {
    const run = await runCli('local/simulate.js', ['message-image', '--wait', '15'], env);
    expect(run.stdout).toMatch(/^200 +message-image$/m);
    expect(run.stdout).toContain('1 of 1 events reached the Bird inbox');
    const inbox = readFileSync(join(dataDir, 'bird-inbox.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const image = inbox.find((e) => e.body.message?.type === 'image');
    expect(image.body.line.lineId).toBe('demo');
    expect(image.body.message.media.s3Key).toMatch(/^media\/demo\/[0-9a-f]{32}\/\d{4}\/\d{2}\/\d{2}\/wd_[A-Za-z0-9_-]{32}\//);
    const download = await fetch(image.body.message.media.url);
    expect(download.status).toBe(200);
    expect((await download.arrayBuffer()).byteLength).toBe(image.body.message.media.size);
  });

  it('the whole loop: simulate message-text shows the message at Bird, the echo reply in the outbox, its statuses back and its record read', async () => {
    const run = await runCli('local/simulate.js', ['message-text', '--wait', '20'], env);
    expect(run.stdout).toMatch(/^200 +message-text$/m);
    expect(run.stdout).toContain('1 of 1 events reached the Bird inbox');
    expect(run.stdout).toContain(`reply to message-text: "echo: Does it come in another color?" in the outbox (${join(dataDir, 'whatsapp-outbox.jsonl')})`);
    // Meta does not promise status order: a `delivered` that arrives after `read` changes nothing (forward only).
    expect(run.stdout).toMatch(/journey: queued → sending → sent( → delivered)? → read; record ob_[A-Za-z0-9_-]{32} ends read/);
    expect(run.stdout).toContain('1 of 1 replies reached the user and came back read');
    // What the simulator printed is what happened: one send to the contact in the outbox. The demo line
    // forwards failed statuses only (forwardStatuses' default): Bird heard none of sent, delivered, read.
    const outbox = readFileSync(join(dataDir, 'whatsapp-outbox.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(outbox.filter((s) => s.text?.body === 'echo: Does it come in another color?').map((s) => [s.to, s.type])).toEqual([['16505551234', 'text']]);
    const inbox = readFileSync(join(dataDir, 'bird-inbox.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const statuses = inbox.filter((e) => e.body.kind === 'status' && e.body.outbound).map((e) => e.body.status.status);
    expect(statuses).toEqual([]);
  });

  it('parks an unroutable event, lists it with the DLQ CLI, and registers lines with the lines CLI', async () => {
    await runCli('local/simulate.js', ['odd-message-type-unknown', '--wait', '2'], env);
    await waitFor(async () => (await runCli('cli/dlq.js', ['list'], env)).stdout.includes('unrouted'), 15_000, 'the parked event');
    const lineFile = join(dataDir, 'line.json');
    writeFileSync(
      lineFile,
      JSON.stringify({ lineId: 'cli-line', phoneNumberId: '5550001', wabaId: 'w', displayPhoneNumber: '15550001', appSecrets: ['super-literal-secret'], bird: { transport: 'flow', flowUrl: 'http://127.0.0.1:9/x', flowSecret: 'flow-literal' } }),
    );
    expect((await runCli('cli/lines.js', ['put', lineFile], env)).code).toBe(0);
    const got = await runCli('cli/lines.js', ['get', 'cli-line'], env);
    expect(got.code).toBe(0);
    expect(got.stdout).toContain('"phoneNumberId": "5550001"');
    expect(got.stdout).not.toContain('super-literal-secret');
    expect(got.stdout).not.toContain('flow-literal');
    expect((await runCli('cli/lines.js', ['disable', 'cli-line'], env)).code).toBe(0);
    expect((await runCli('cli/lines.js', ['list'], env)).stdout).toMatch(/"lineId": "cli-line"[\s\S]*"active": false/);
    expect((await runCli('cli/lines.js', ['get', 'nobody'], env)).code).toBe(1);

    // The way to AWS: export writes the lines whole (secrets too, for the import) to a file only the operator reads.
    const exportFile = join(dataDir, 'exported-lines.json');
    const exported = await runCli('cli/lines.js', ['export', exportFile], env);
    expect(exported.code).toBe(0);
    expect(exported.stdout).not.toContain('flow-literal');
    expect(statSync(exportFile).mode & 0o777).toBe(0o600);
    const lines = JSON.parse(readFileSync(exportFile, 'utf8')) as { lineId: string; bird: { flowSecret?: string } }[];
    expect(lines.map((l) => l.lineId).sort()).toEqual(['cli-line', 'demo', 'demo-2']);
    expect(lines.find((l) => l.lineId === 'cli-line')!.bird.flowSecret).toBe('flow-literal');
    const imported = await runCli('cli/lines.js', ['import', exportFile], env);
    expect(imported.code).toBe(0);
    expect(JSON.parse(imported.stdout)).toEqual({ upserted: lines.map((l) => l.lineId) });
  });
});
