import { DeleteMessageCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { startIngressHarness, type IngressHarness } from '../support/ingress';
import { LINES } from '../support/worker';
import { decodeJob } from '../../src/outbound/job-message';
import { outboundId } from '../../src/outbound/record';

const KEY = 'send-key-under-test-0123456789';
const ROTATED_KEY = 'send-key-rotated-9876543210';
const OTHER_LINE_KEY = 'other-line-key-555';
const TO = '16505551234';

let aws: AwsHarness;
let ingress: IngressHarness;

beforeAll(async () => {
  aws = await startAwsHarness();
  ingress = await startIngressHarness(aws, { outbound: true, sendTimeoutMs: 1500 });
  const bird = { transport: 'flow' as const, flowUrl: 'http://127.0.0.1:9/flow', flowSecret: 'flow-secret' };
  await ingress.putLines([
    { ...LINES.doc, bird, outboundKeys: [KEY, ROTATED_KEY] },
    { ...LINES.pywa, bird, outboundKeys: [OTHER_LINE_KEY] },
    { ...LINES.third, bird, outboundKeys: [KEY], active: false },
  ]);
});

afterAll(async () => {
  await ingress.stop();
  await aws.stop();
});

beforeEach(async () => {
  await aws.drainQueue(aws.standIns.outboundQueueUrl);
});

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function post(lineId: string, body: unknown, options: { key?: string | null; idempotencyKey?: string; raw?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.key !== null) headers.authorization = `Bearer ${options.key ?? KEY}`;
  if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
  const res = await fetch(`${ingress.url}/v1/lines/${lineId}/messages`, { method: 'POST', headers, body: options.raw ?? JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

async function get(lineId: string, id: string, key = KEY): Promise<Answer> {
  const res = await fetch(`${ingress.url}/v1/lines/${lineId}/messages/${id}`, { headers: { authorization: `Bearer ${key}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

/** Receive with the system attributes (local-aws-sqs reads only the deprecated AttributeNames), then delete. */
async function receiveAll(queueUrl: string) {
  const out = await aws.clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, AttributeNames: ['All'] }));
  const messages = out.Messages ?? [];
  for (const m of messages) await aws.clients.sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle! }));
  return messages;
}

const text = (body: string) => ({ to: TO, type: 'text', text: { body } });

describe('POST /v1/lines/:lineId/messages', () => {
  it('answers 202 only once the job is on the outbound FIFO queue, grouped by recipient and deduplicated by id', async () => {
    const answer = await post(LINES.doc.lineId, text('hello'), { idempotencyKey: 'order-1' });
    expect(answer.status).toBe(202);
    expect(answer.body).toEqual({ id: outboundId(LINES.doc.lineId, 'order-1'), status: 'queued' });

    const messages = await receiveAll(aws.standIns.outboundQueueUrl);
    expect(messages).toHaveLength(1);
    expect(messages[0]!.Attributes?.MessageGroupId).toBe(`${LINES.doc.lineId}:${TO}`);
    expect(messages[0]!.Attributes?.MessageDeduplicationId).toBe(answer.body.id);
    expect(decodeJob(messages[0]!.Body!)).toMatchObject({ id: answer.body.id, lineId: LINES.doc.lineId, to: TO, idempotencyKey: 'order-1', source: 'api', body: { type: 'text', text: { body: 'hello' } } });

    const view = await get(LINES.doc.lineId, answer.body.id as string);
    expect(view.status).toBe(200);
    expect(view.body).toMatchObject({ id: answer.body.id, status: 'queued', to: TO });
    expect(typeof view.body.createdAt).toBe('string');
  });

  it('accepts any of the line\'s keys (rotation)', async () => {
    expect((await post(LINES.doc.lineId, text('rotated'), { key: ROTATED_KEY })).status).toBe(202);
  });

  it('the same key with the same body is the same message, queued once; a different body is 422', async () => {
    const first = await post(LINES.doc.lineId, text('once'), { idempotencyKey: 'same-key' });
    // Key order does not make it a different body.
    const again = await post(LINES.doc.lineId, { text: { body: 'once' }, type: 'text', to: TO }, { idempotencyKey: 'same-key' });
    expect(again.status).toBe(202);
    expect(again.body.id).toBe(first.body.id);
    // Still queued (not yet sent): enqueued again, and FIFO deduplication (same id) drops the copy.
    expect(await aws.drainQueue(aws.standIns.outboundQueueUrl)).toHaveLength(1);

    const reused = await post(LINES.doc.lineId, text('something else'), { idempotencyKey: 'same-key' });
    expect(reused.status).toBe(422);
    expect(reused.body).toMatchObject({ error: 'idempotency_key_reused', field: 'Idempotency-Key' });
    const otherRecipient = await post(LINES.doc.lineId, { ...text('once'), to: '16505550000' }, { idempotencyKey: 'same-key' });
    expect(otherRecipient.status).toBe(422);
  });

  it('makes up an Idempotency-Key when none is given, and says which', async () => {
    const answer = await post(LINES.doc.lineId, text('no key'));
    expect(answer.status).toBe(202);
    const key = answer.headers.get('idempotency-key') ?? '';
    expect(key).toMatch(/^auto:/);
    expect(answer.body.id).toBe(outboundId(LINES.doc.lineId, key));
  });

  it.each([
    ['unknown line', 'no-such-line', KEY],
    ['wrong key', LINES.doc.lineId, 'not-the-key'],
    ["another line's key", LINES.doc.lineId, OTHER_LINE_KEY],
    ['inactive line', LINES.third.lineId, KEY],
  ])('%s: the same 401', async (_name, lineId, key) => {
    const answer = await post(lineId, text('x'), { key });
    expect(answer.status).toBe(401);
    expect(answer.body).toMatchObject({ error: 'unauthorized', message: 'Unknown line or wrong key' });
    expect(answer.headers.get('www-authenticate')).toBe('Bearer');
  });

  it('no Authorization header: 401', async () => {
    expect((await post(LINES.doc.lineId, text('x'), { key: null })).status).toBe(401);
  });

  it.each([
    ['missing to', { type: 'text', text: { body: 'x' } }, 'to'],
    ['text over 4096', text('x'.repeat(4097)), 'text.body'],
    ['empty text', text(''), 'text.body'],
    ['unknown type', { to: TO, type: 'carousel', carousel: {} }, 'type'],
    ['type object missing', { to: TO, type: 'image' }, 'image'],
    ['media by link and id', { to: TO, type: 'image', image: { link: 'https://example.com/a.png', id: '123' } }, 'image.link'],
    ['media link not https', { to: TO, type: 'document', document: { link: 'http://example.com/a.pdf' } }, 'document.link'],
    [
      'four reply buttons',
      {
        to: TO,
        type: 'interactive',
        interactive: {
          type: 'button',
          body: { text: 'pick' },
          action: { buttons: [1, 2, 3, 4].map((n) => ({ type: 'reply', reply: { id: `b${n}`, title: `B${n}` } })) },
        },
      },
      'interactive.action.buttons',
    ],
    [
      'button title over 20',
      { to: TO, type: 'interactive', interactive: { type: 'button', body: { text: 'pick' }, action: { buttons: [{ type: 'reply', reply: { id: 'b', title: 'x'.repeat(21) } }] } } },
      'interactive.action.buttons.0.reply.title',
    ],
    ['reply context without id', { ...text('x'), context: {} }, 'context.message_id'],
    ['bad recipient', { ...text('x'), to: 'not a number!' }, 'to'],
  ])('%s: 400 naming the field', async (_name, body, field) => {
    const answer = await post(LINES.doc.lineId, body);
    expect(answer.status).toBe(400);
    expect(answer.body.field).toBe(field);
    expect(answer.body.message).toEqual(expect.stringContaining(field === 'to' ? 'to' : field));
  });

  it('a body that is not JSON: 400', async () => {
    const answer = await post(LINES.doc.lineId, undefined, { raw: '{"to":' });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('invalid_json');
  });

  it('a body over 64 KB: 413', async () => {
    const answer = await post(LINES.doc.lineId, undefined, { raw: JSON.stringify(text('x'.repeat(66 * 1024))) });
    expect(answer.status).toBe(413);
    expect(answer.body.error).toBe('payload_too_large');
  });

  it('an Idempotency-Key over 255 characters: 400', async () => {
    const answer = await post(LINES.doc.lineId, text('x'), { idempotencyKey: 'k'.repeat(256) });
    expect(answer.status).toBe(400);
    expect(answer.body.field).toBe('Idempotency-Key');
  });

  it('503 with Retry-After while SQS is down; the retry with the same key enqueues it (the first may not have)', async () => {
    await aws.standIns.stopSqs();
    let answer: Answer;
    try {
      answer = await post(LINES.doc.lineId, text('durable'), { idempotencyKey: 'during-outage' });
    } finally {
      await aws.standIns.startSqs();
    }
    expect(answer.status).toBe(503);
    expect(answer.headers.get('retry-after')).toBe('5');
    // The record was written before SQS failed: it is queued, yet nothing is on the queue.
    expect((await get(LINES.doc.lineId, outboundId(LINES.doc.lineId, 'during-outage'))).body.status).toBe('queued');
    expect(await aws.drainQueue(aws.standIns.outboundQueueUrl)).toHaveLength(0);

    const retried = await post(LINES.doc.lineId, text('durable'), { idempotencyKey: 'during-outage' });
    expect(retried.status).toBe(202);
    expect(await aws.drainQueue(aws.standIns.outboundQueueUrl)).toHaveLength(1);
  });
});

describe('GET /v1/lines/:lineId/messages/:id', () => {
  it('404 for an unknown id, and for another line\'s reply', async () => {
    const answer = await post(LINES.doc.lineId, text('mine'), { idempotencyKey: 'owned' });
    expect((await get(LINES.doc.lineId, outboundId(LINES.doc.lineId, 'nope'))).status).toBe(404);
    expect((await get(LINES.pywa.lineId, answer.body.id as string, OTHER_LINE_KEY)).status).toBe(404);
    expect((await get(LINES.doc.lineId, answer.body.id as string, 'wrong')).status).toBe(401);
  });

  it('logs hold no key and no whole phone number', () => {
    const logs = ingress.logs.text();
    expect(logs).not.toContain(KEY);
    expect(logs).not.toContain(ROTATED_KEY);
    expect(logs).not.toContain(TO);
  });
});
