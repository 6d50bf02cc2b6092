import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { lineSchema } from '../../src/lines/line';
import { createRegistry } from '../../src/observability/metrics';
import { TurnBuffer } from '../../src/worker/turns/turn-buffer';
import { turnDue, turnEvents, TURN_OBJECT } from '../../src/worker/turns/turn-message';
import { DynamoTurnStore, turnBufferKey } from '../../src/worker/turns/turn-store';
import type { TimerFire } from '../../src/worker/turns/turn-timers';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { capturedLogger } from '../support/logs';
import { lineFor } from '../support/worker';

describe('turnDue', () => {
  const policy = { quietMs: 1000, maxWaitMs: 5000, maxMessages: 4 };
  it.each([
    ['quiet not yet, max not yet', { firstAt: 0, lastAt: 500, count: 2 }, 1000, { nextAt: 1500 }],
    ['quiet reached', { firstAt: 0, lastAt: 500, count: 2 }, 1500, { cut: 'quiet' }],
    ['max wait reached before quiet', { firstAt: 0, lastAt: 4800, count: 3 }, 5000, { cut: 'max_wait' }],
    ['next wake-up is the max wait when it comes first', { firstAt: 0, lastAt: 4500, count: 3 }, 4600, { nextAt: 5000 }],
    ['max messages at once', { firstAt: 0, lastAt: 10, count: 4 }, 10, { cut: 'max_messages' }],
  ])('%s', (_name, turn, now, expected) => {
    expect(turnDue(turn, policy, now)).toEqual(expected);
  });
});

describe('turnEvents', () => {
  it('reads a turn message as one turn event under its own key, and leaves Meta payloads alone', () => {
    const [event] = turnEvents({ object: TURN_OBJECT, turn: { id: 't1', key: 'turn#line#t1', lineId: 'line', phoneNumberId: '1', contact: { waId: '5' }, cut: 'quiet', messages: [{ a: 1 }] } })!;
    expect(event).toMatchObject({ key: 'turn#line#t1', kind: 'turn', phoneNumberId: '1', contact: { waId: '5' }, turn: { id: 't1', cut: 'quiet', messages: [{ a: 1 }] } });
    expect(turnEvents({ object: 'whatsapp_business_account', entry: [] })).toBeUndefined();
    expect(turnEvents({ object: TURN_OBJECT, turn: { id: 't1' } })).toBeUndefined();
  });
});

describe('TurnBuffer on the stand-ins: a crash at any point', () => {
  let aws: AwsHarness;
  let clock = 1_000_000;
  const fires: TimerFire[] = [];
  beforeAll(async () => {
    aws = await startAwsHarness({ fifo: true, queueName: 'turn-buffer' });
  });
  afterAll(async () => aws.stop());

  const line = lineSchema.parse({ ...lineFor('doc', 'http://127.0.0.1:9/flow'), turn: { quietMs: 1000, maxWaitMs: 5000, maxMessages: 10 } });
  const store = () => new DynamoTurnStore({ documents: aws.clients.documents, tableName: aws.names.dedupeTable, ttlDays: 15, now: () => clock });
  const buffer = () =>
    new TurnBuffer({
      store: store(),
      timers: { arm: async (pk: string) => void fires.push({ pk, armedAt: clock }) },
      sqs: aws.clients.sqs,
      queueUrl: aws.standIns.queueUrl,
      logger: capturedLogger('warn').logger,
      registry: createRegistry({ defaultMetrics: false }),
      now: () => clock,
    });
  const event = (wamid: string) => ({
    key: `msg#${line.phoneNumberId}#${wamid}`,
    kind: 'message' as const,
    field: 'messages',
    phoneNumberId: line.phoneNumberId,
    contact: { userKey: '15550003001', waId: '15550003001' },
    message: { id: wamid, type: 'text', text: wamid },
    raw: {},
  });
  const flowBody = (wamid: string) => ({ reference: `msg#${line.phoneNumberId}#${wamid}`, kind: 'message' as const, field: 'messages', line: { lineId: line.lineId, phoneNumberId: line.phoneNumberId }, contact: null, receivedAt: new Date(clock).toISOString(), raw: {} });
  const queued = async () =>
    (await aws.clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: aws.standIns.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 30, AttributeNames: ['All'] }))).Messages ?? [];

  it('a retried message is buffered once, even after its turn went out; a turn sealed by a crashed worker is sent by the next flush, once', async () => {
    const first = buffer();
    await first.buffer({ line, event: event('w1'), body: flowBody('w1') });
    await first.buffer({ line, event: event('w2'), body: flowBody('w2') });
    // The worker crashed after buffering w2 but before marking it done: the message comes back.
    await first.buffer({ line, event: event('w2'), body: flowBody('w2') });
    const pk = turnBufferKey(line.lineId, '15550003001');
    expect((await store().read(pk))!.items.map((m) => m.key)).toEqual([event('w1').key, event('w2').key]);
    expect(fires.length).toBe(3); // every buffering armed a timer, the retry too

    // Cut: the turn is sealed in the same write that empties the buffer; then "crash" before it is queued.
    clock += 1000;
    const state = (await store().read(pk))!;
    expect(await store().seal(state, JSON.stringify({ object: TURN_OBJECT, turn: { id: state.turnId, key: `turn#${line.lineId}#${state.turnId}`, messages: [] } }))).toBe(true);
    expect(await store().seal(state, 'a second cut of the same turn')).toBe(false);
    expect(await queued()).toHaveLength(0);

    // w3 arrives meanwhile: a new turn, behind the sealed one.
    await first.buffer({ line, event: event('w3'), body: flowBody('w3') });
    // Another worker's timer fires: the sealed turn goes out first, once, in the conversation's group.
    const next = buffer();
    await next.flush({ pk, armedAt: clock });
    await next.flush({ pk, armedAt: clock });
    const out = await queued();
    expect(out).toHaveLength(1);
    expect(JSON.parse(out[0]!.Body!).turn.id).toBe(state.turnId);
    expect(out[0]!.Attributes?.MessageGroupId).toBe(`${line.phoneNumberId}:15550003001`);
    const after = (await store().read(pk))!;
    expect(after.sealed).toBeUndefined();
    expect(after.items.map((m) => m.key)).toEqual([event('w3').key]);
    // w1 is long gone in a turn; a redelivery of it (Meta, a redrive without dedupe) is not buffered again.
    await next.buffer({ line, event: event('w1'), body: flowBody('w1') });
    expect((await store().read(pk))!.items.map((m) => m.key)).toEqual([event('w3').key]);
  });
});
