import type { ReceivedCall } from '../../src/local/bird-standin';
import { startBirdStandIn, type BirdStandIn } from '../../src/local/bird-standin';
import { sign } from '../../src/ingress/signature';
import { upsertLines, parseLines } from '../../src/lines/admin';
import { DynamoLineStore } from '../../src/lines/store';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { freePort, productionLikeEnv, startMain, waitFor, type Child } from '../support/child';
import { capturedLogger } from '../support/logs';
import { LINES, lineFor } from '../support/worker';

/**
 * Conversation state through the running process (`node dist/main.js all`) on the stand-ins, FIFO:
 * signed POSTs → ingress → local-aws-sqs FIFO → worker → Bird stand-in, and the contact API.
 */
const SECRET = 'conversation-app-secret';
const KEY = 'conversation-api-key-0123456789';
const PNID = LINES.doc.phoneNumberId;
const BSUID = 'US.77001234567890';
const OLD_NUMBER = '16505550111';
const NEW_NUMBER = '16505550222';
const NOW = Math.floor(Date.now() / 1000);

let aws: AwsHarness;
let bird: BirdStandIn;
let child: Child;
let url: string;

function payload(field: string, value: Record<string, unknown>): string {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: LINES.doc.wabaId, changes: [{ field, value: { messaging_product: 'whatsapp', metadata: { display_phone_number: LINES.doc.displayPhoneNumber, phone_number_id: PNID }, ...value } }] }],
  });
}
const message = (ids: Record<string, string>, id: string, at: number, extra: Record<string, unknown> = { type: 'text', text: { body: `text of ${id}` } }) =>
  payload('messages', { messages: [{ ...ids, id, timestamp: String(at), ...extra }] });

async function post(body: string): Promise<void> {
  const res = await fetch(`${url}/webhooks/whatsapp`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(SECRET, body) } });
  expect(res.status).toBe(200);
}

interface Body {
  kind: string;
  field: string;
  message?: { id: string };
  conversation?: { contactId: string; windowOpenUntil: string | null; paused: { until: string | null; by: string } | null };
}
const bodies = () => bird.received().filter((c: ReceivedCall) => !c.duplicate).map((c) => c.body as unknown as Body);
const byMessage = (id: string) => bodies().find((b) => b.message?.id === id);

beforeAll(async () => {
  aws = await startAwsHarness({ fifo: true, queueName: 'conversation' });
  bird = await startBirdStandIn({ logger: capturedLogger('warn').logger });
  const lines = new DynamoLineStore({ documents: aws.clients.documents, tableName: aws.names.linesTable });
  await upsertLines(lines, parseLines([{ ...lineFor('doc', bird.flowUrl()), outboundKeys: [KEY] }], { production: false }));
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  child = startMain(
    'all',
    productionLikeEnv(aws, {
      PORT: String(port),
      WHATSAPP_VERIFY_TOKEN: 'v',
      WHATSAPP_APP_SECRETS: SECRET,
      SQS_OUTBOUND_QUEUE_URL: aws.standIns.outboundQueueUrl,
      SQS_OUTBOUND_DLQ_URL: aws.standIns.outboundDlqUrl,
      DYNAMODB_OUTBOUND_TABLE: aws.names.outboundTable,
      SQS_WAIT_TIME_SECONDS: '0',
      SQS_VISIBILITY_TIMEOUT_SECONDS: '5',
      SHUTDOWN_TIMEOUT_MS: '3000',
    }),
  );
  await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 20_000, 'the process').catch((error: Error) => {
    throw new Error(`${error.message}\n${child.output().slice(-3000)}`);
  });
}, 40_000);

afterAll(async () => {
  if (child && child.process.exitCode === null) {
    child.process.kill('SIGTERM');
    await child.exited;
  }
  await bird?.stop();
  await aws?.stop();
});

describe('conversation state through the running process', () => {
  it('BSUID only, then both ids, then user_changed_number: one contactId, the window carries over, the messages reach Bird in order', async () => {
    await post(message({ from_user_id: BSUID }, 'wamid.P1', NOW - 300));
    await post(message({ from: OLD_NUMBER, from_user_id: BSUID }, 'wamid.P2', NOW - 200));
    await post(message({ from: OLD_NUMBER }, 'wamid.P3', NOW - 100, { type: 'system', system: { type: 'user_changed_number', wa_id: NEW_NUMBER, body: 'changed' } }));
    await post(message({ from: NEW_NUMBER, from_user_id: BSUID }, 'wamid.P4', NOW - 50));
    await waitFor(async () => ['wamid.P1', 'wamid.P2', 'wamid.P3', 'wamid.P4'].every((id) => byMessage(id)), 20_000, 'four deliveries').catch((error: Error) => {
      throw new Error(`${error.message}\n${child.output().slice(-3000)}`);
    });
    const texts = bodies().filter((b) => ['wamid.P1', 'wamid.P2', 'wamid.P4'].includes(b.message?.id ?? ''));
    expect(texts.map((b) => b.message!.id)).toEqual(['wamid.P1', 'wamid.P2', 'wamid.P4']);
    const ids = new Set(['wamid.P1', 'wamid.P2', 'wamid.P3', 'wamid.P4'].map((id) => byMessage(id)!.conversation!.contactId));
    expect(ids.size).toBe(1);
    // Each body carries the window as it stood with that message applied: Meta's time + 24 h, never our clock.
    expect(byMessage('wamid.P1')!.conversation!.windowOpenUntil).toBe(new Date((NOW - 300 + 86_400) * 1000).toISOString());
    expect(byMessage('wamid.P4')!.conversation).toEqual({ contactId: [...ids][0], windowOpenUntil: new Date((NOW - 50 + 86_400) * 1000).toISOString(), paused: null });

    const res = await fetch(`${url}/v1/lines/${LINES.doc.lineId}/contacts/${NEW_NUMBER}`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ contactId: [...ids][0], waId: NEW_NUMBER, userId: BSUID, windowOpenUntil: new Date((NOW - 50 + 86_400) * 1000).toISOString() });
  }, 30_000);

  it('an echo for contact C (owner answered from the Business app) → C’s next message reaches Bird paused by business_app', async () => {
    const C = '16505550333';
    await post(payload('smb_message_echoes', { message_echoes: [{ from: LINES.doc.displayPhoneNumber, to: C, id: 'wamid.ECHO1', timestamp: String(NOW - 10), type: 'text', text: { body: 'I will handle this one' } }] }));
    await waitFor(async () => bodies().some((b) => b.field === 'smb_message_echoes'), 15_000, 'the echo');
    await post(message({ from: C }, 'wamid.C1', NOW - 5));
    await waitFor(async () => byMessage('wamid.C1') !== undefined, 15_000, "C's message");
    expect(byMessage('wamid.C1')!.conversation!.paused).toEqual({ until: new Date((NOW - 10 + 3600) * 1000).toISOString(), by: 'business_app' });
  }, 30_000);
});
