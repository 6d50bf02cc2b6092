import { setTimeout as sleep } from 'node:timers/promises';
import { turnBufferKey } from '../../src/worker/turns/turn-store';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { sign } from '../../src/ingress/signature';
import { startBirdStandIn, type BirdStandIn } from '../../src/local/bird-standin';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { freePort, productionLikeEnv, startMain, waitFor, type Child } from '../support/child';
import { APP_SECRET, startIngressHarness, type IngressHarness } from '../support/ingress';
import { capturedLogger } from '../support/logs';
import { LINES, lineFor, queueDepth } from '../support/worker';

/**
 * A worker killed with SIGKILL after it buffered a contact's messages and before it cut their turn:
 * the buffer (DynamoDB) and the durable timer (a delayed message on the turn queue) outlive it, and
 * the next worker sends one turn with every message.
 */
const TURN = { quietMs: 2500, maxWaitMs: 10_000, maxMessages: 10 };
const CONTACT = '15550002001';

let aws: AwsHarness;
let bird: BirdStandIn;
let ingress: IngressHarness;
const children: Child[] = [];

beforeAll(async () => {
  aws = await startAwsHarness({ fifo: true, queueName: 'turn-crash' });
  bird = await startBirdStandIn({ logger: capturedLogger('warn').logger });
  ingress = await startIngressHarness(aws);
  await ingress.putLines([{ ...lineFor('doc', bird.flowUrl()), turn: TURN }]);
});

afterAll(async () => {
  for (const child of children) if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
  await ingress.stop();
  await bird.stop();
  await aws.stop();
});

async function startWorker(): Promise<Child> {
  const child = startMain(
    'worker',
    productionLikeEnv(aws, {
      PORT: String(await freePort()),
      SQS_TURN_QUEUE_URL: aws.standIns.turnQueueUrl,
      SQS_WAIT_TIME_SECONDS: '0',
      SQS_VISIBILITY_TIMEOUT_SECONDS: '5',
      WORKER_CONCURRENCY: '4',
      SHUTDOWN_TIMEOUT_MS: '3000',
    }),
  );
  children.push(child);
  return child;
}

function text(wamid: string): string {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: LINES.doc.wabaId,
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: LINES.doc.displayPhoneNumber, phone_number_id: LINES.doc.phoneNumberId },
              contacts: [{ profile: { name: 'Someone' }, wa_id: CONTACT }],
              messages: [{ from: CONTACT, id: wamid, timestamp: '1749416383', type: 'text', text: { body: `text of ${wamid}` } }],
            },
          },
        ],
      },
    ],
  });
}

const buffered = async () => {
  const out = await aws.clients.documents.send(new GetCommand({ TableName: aws.names.dedupeTable, Key: { pk: turnBufferKey(LINES.doc.lineId, CONTACT) }, ConsistentRead: true }));
  return Number(out.Item?.count ?? 0);
};

describe('SIGKILL between buffering and the flush', () => {
  it('after a restart, one turn with every message', async () => {
    const first = await startWorker();
    const sent = ['wamid.k-1', 'wamid.k-2', 'wamid.k-3'];
    for (const wamid of sent) {
      const res = await fetch(`${ingress.url}/webhooks/whatsapp`, { method: 'POST', body: text(wamid), headers: { 'x-hub-signature-256': sign(APP_SECRET, text(wamid)) } });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    // All three buffered and their messages done (deleted from the queue), the turn not yet due.
    await waitFor(async () => (await buffered()) === 3 && (await queueDepth(aws)) === 0, 10_000, 'three buffered messages');
    first.process.kill('SIGKILL');
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(bird.received()).toHaveLength(0);

    await startWorker();
    await waitFor(async () => bird.received().length >= 1, 20_000, 'the turn at Bird');
    await sleep(TURN.quietMs + 1500);
    const calls = bird.received();
    expect(calls).toHaveLength(1);
    const body = calls[0]!.body as { kind: string; turn: { messages: Array<{ message: { id: string } }> } };
    expect(body.kind).toBe('turn');
    expect(body.turn.messages.map((m) => m.message.id)).toEqual(sent);
    expect(await buffered()).toBe(0);
  }, 60_000);
});
