import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { loadConfig } from '../config/config';
import { sign } from '../ingress/signature';
import { envelopeToEvents } from '../meta/envelope';
import { localSecrets, readEmbeddedState } from '../config/embedded-state';
import { isWebhookPayloadFile } from './fixture-files';
import { followReplies, type FollowedMessage } from './follow-replies';

const USAGE = `usage: npm run simulate -- <fixture name or file> [...] | --all  [--as-is] [--url <webhook url>] [--wait <seconds>]
  Signs Meta webhook fixtures with the gateway's app secret and POSTs them to the running gateway.
  Default: message and status ids get a fresh suffix, so each run is new traffic; --as-is sends the file's bytes unchanged.`;

/** Where fixtures live: FIXTURES_DIR, or the project's own copy under test/fixtures/. */
function fixturesDir(): string {
  const candidates = [process.env.FIXTURES_DIR, resolve(__dirname, '../../test/fixtures/meta-webhooks'), resolve('test/fixtures/meta-webhooks')];
  const found = candidates.find((c): c is string => c !== undefined && existsSync(c));
  if (!found) throw new Error('No fixtures found: set FIXTURES_DIR to a folder of Meta webhook JSON files');
  return found;
}

function fixtureFiles(names: string[], all: boolean): string[] {
  const dir = fixturesDir();
  if (all) {
    return readdirSync(dir)
      .filter(isWebhookPayloadFile)
      .sort()
      .map((f) => join(dir, f));
  }
  return names.map((n) => (existsSync(n) ? n : join(dir, n.endsWith('.json') ? n : `${n}.json`)));
}

/**
 * Fresh wamids make each run new traffic; dedupe would otherwise (rightly) skip what was delivered
 * before. Fresh timestamps make it traffic of now: a fixture's old Meta timestamp would be a late
 * retry, whose person's window is closed (the AI's free-form reply refused).
 */
function freshIds(json: unknown, suffix: string): unknown {
  const value = json as { entry?: Array<{ changes?: Array<{ value?: { messages?: Array<{ id?: string; timestamp?: string }>; statuses?: Array<{ id?: string; timestamp?: string }> } }> }> };
  const now = String(Math.floor(Date.now() / 1000));
  for (const entry of value.entry ?? []) {
    for (const change of entry.changes ?? []) {
      for (const item of [...(change.value?.messages ?? []), ...(change.value?.statuses ?? [])]) {
        if (typeof item?.id === 'string') item.id = `${item.id}.sim${suffix}`;
        if (typeof item?.timestamp === 'string') item.timestamp = now;
      }
    }
  }
  return json;
}

async function main(argv: string[]): Promise<number> {
  const asIs = argv.includes('--as-is');
  const all = argv.includes('--all');
  const urlIndex = argv.indexOf('--url');
  const waitIndex = argv.indexOf('--wait');
  const waitSeconds = waitIndex >= 0 ? Number(argv[waitIndex + 1]) : 10;
  const optionValues = new Set([urlIndex, waitIndex].filter((i) => i >= 0).map((i) => i + 1));
  const names = argv.filter((a, i) => !a.startsWith('--') && !optionValues.has(i));
  if (!all && names.length === 0) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const config = loadConfig();
  const dataDir = resolve(config.dataDir);
  const url = urlIndex >= 0 ? argv[urlIndex + 1]! : readEmbeddedState(dataDir).gatewayUrl;
  const secret = config.whatsapp.appSecrets[0] ?? localSecrets(dataDir).appSecret;
  const inbox = join(dataDir, 'bird-inbox.jsonl');
  const inboxStart = existsSync(inbox) ? readFileSync(inbox).length : 0;

  const expected = new Map<string, string>();
  const messages: FollowedMessage[] = [];
  const run = Date.now().toString(36);
  for (const [n, file] of fixtureFiles(names, all).entries()) {
    const raw = readFileSync(file);
    const body = asIs ? raw : Buffer.from(JSON.stringify(freshIds(JSON.parse(raw.toString('utf8')), `${run}${n}`)));
    const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(secret, body) } });
    const name = basename(file, '.json');
    process.stdout.write(`${String(res.status).padEnd(4)} ${name}\n`);
    if (res.status === 200) {
      for (const event of envelopeToEvents(JSON.parse(body.toString('utf8')))) {
        expected.set(event.key, name);
        if (event.kind === 'message' && event.phoneNumberId) messages.push({ key: event.key, phoneNumberId: event.phoneNumberId, name });
      }
    }
  }
  if (!existsSync(join(dataDir, 'embedded.json')) || urlIndex >= 0) return 0;

  // Follow the events to the local Bird inbox, so a newcomer sees each one arrive (or not).
  const deadline = Date.now() + waitSeconds * 1000;
  const arrived = new Set<string>();
  while (Date.now() < deadline && arrived.size < expected.size) {
    await new Promise((r) => setTimeout(r, 250));
    if (!existsSync(inbox)) continue;
    for (const line of readFileSync(inbox).subarray(inboxStart).toString('utf8').split('\n')) {
      if (!line) continue;
      const key = (JSON.parse(line) as { idempotencyKey?: string }).idempotencyKey;
      if (key && expected.has(key)) arrived.add(key);
    }
  }
  process.stdout.write(`\n${arrived.size} of ${expected.size} events reached the Bird inbox (${inbox}) within ${waitSeconds}s\n`);
  const missing = [...expected].filter(([key]) => !arrived.has(key));
  for (const [key, name] of missing) process.stdout.write(`  not in the inbox: ${key} (${name}) — parked or duplicate? see \`npm run dlq -- list\` and the gateway log\n`);

  // The other half: the echo AI's reply to each message, out through Graph, and its statuses back.
  const answered = messages.filter((m) => arrived.has(m.key));
  if (answered.length === 0) return 0;
  const replies = await followReplies({ ...config, dataDir }, answered, Date.now() + waitSeconds * 1000);
  for (const reply of replies) {
    const where = reply.text === undefined ? 'not in the outbox yet' : `"${reply.text}" in the outbox (${join(dataDir, 'whatsapp-outbox.jsonl')})`;
    process.stdout.write(`reply to ${reply.name}: ${where}\n  journey: ${reply.steps.join(' → ') || '(no record)'}; record ${reply.id} ends ${reply.status ?? 'missing'}\n`);
  }
  const read = replies.filter((r) => r.status === 'read').length;
  process.stdout.write(`${read} of ${replies.length} replies reached the user and came back read within ${waitSeconds}s\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`simulate: ${error.message}\n`);
    process.exit(1);
  },
);
