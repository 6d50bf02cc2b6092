import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { startFastSqs, type FastSqs } from '../../bench/fast-sqs';
import { createLogger } from '../../src/observability/logger';
import { createRegistry } from '../../src/observability/metrics';
import type { ReceivedMessage } from '../../src/queue/message';
import { SqsPoller, type SqsPollerOptions } from '../../src/queue/poller';

/**
 * The receive gather window (receiveLingerMs) on an SQS that answers long polls on arrival and
 * holds FIFO groups as SQS does (bench/fast-sqs.ts): local-aws-sqs answers a long poll only when
 * its wait ends, so it could not show what a receive gathers.
 */
describe('receive gather window', () => {
  let fast: FastSqs;
  let run = 0;
  const pollers: SqsPoller[] = [];
  const clients: SQSClient[] = [];

  beforeAll(async () => {
    fast = await startFastSqs([1, 2, 3, 4, 5, 6, 7, 8].flatMap((i) => [`gather-${i}.fifo`, `gather-${i}`]));
  });
  afterEach(async () => {
    await Promise.all(pollers.splice(0).map((p) => p.stop()));
    for (const c of clients.splice(0)) c.destroy();
  });
  afterAll(async () => {
    await fast.close();
  });

  /** A client that records, per ReceiveMessage, how many messages it brought, and how many receives were out at most. */
  function recordingClient() {
    const sqs = new SQSClient({ region: 'us-east-1', endpoint: fast.endpoint, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
    const receives: { messages: number; at: number }[] = [];
    const out = { now: 0, max: 0 };
    sqs.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'ReceiveMessageCommand') return next(args);
        out.now += 1;
        out.max = Math.max(out.max, out.now);
        try {
          const result = await next(args);
          const messages = (result.output as { Messages?: unknown[] }).Messages?.length ?? 0;
          receives.push({ messages, at: Date.now() });
          return result;
        } finally {
          out.now -= 1;
        }
      },
      { step: 'initialize', name: 'recordReceives' },
    );
    clients.push(sqs);
    return { sqs, receives, out };
  }

  function queueUrl(fifo: boolean): string {
    run += 1;
    return fast.queueUrl(fifo ? `gather-${run}.fifo` : `gather-${run}`);
  }

  function start(options: Partial<SqsPollerOptions> & Pick<SqsPollerOptions, 'sqs' | 'queueUrl' | 'handler'>): SqsPoller {
    const poller = new SqsPoller({
      logger: createLogger({ level: 'silent' }),
      registry: createRegistry({ defaultMetrics: false }),
      // Short, so a long poll out at stop() returns by itself within the budget.
      waitTimeSeconds: 1,
      shutdownTimeoutMs: 1500,
      ...options,
    });
    pollers.push(poller);
    poller.start();
    return poller;
  }

  async function send(sqs: SQSClient, url: string, body: string, group = body): Promise<void> {
    const fifo = url.endsWith('.fifo') ? { MessageGroupId: group, MessageDeduplicationId: `${run}-${body}` } : {};
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body, ...fifo }));
  }

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  async function until(check: () => boolean, ms = 3000): Promise<void> {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) throw new Error('timed out');
      await sleep(5);
    }
  }
  const bodies = (seen: ReceivedMessage[]) => seen.map((m) => m.body.toString('utf8'));

  it.each([
    [400, [1, 3]],
    [0, [1, 1, 1, 1]],
  ])('linger %p ms: three messages arriving while it lingers after a short receive come in receives of %p', async (receiveLingerMs, sizes) => {
    const { sqs, receives } = recordingClient();
    const url = queueUrl(true);
    const seen: ReceivedMessage[] = [];
    start({ sqs, queueUrl: url, receiveLoops: 1, receiveLingerMs, handler: async (m) => (seen.push(m), { action: 'delete' }) });
    await sleep(50); // the first long poll is out
    await send(sqs, url, 'a');
    await until(() => seen.length === 1);
    for (const body of ['b', 'c', 'd']) {
      await send(sqs, url, body);
      await sleep(15);
    }
    await until(() => seen.length === 4);
    expect(receives.filter((r) => r.messages > 0).map((r) => r.messages)).toEqual(sizes);
    expect(bodies(seen)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('the wait is bounded by the linger, and a message to an idle queue is taken at once (no linger after an empty poll, no spinning)', async () => {
    const { sqs, receives } = recordingClient();
    const url = queueUrl(true);
    const pickedAt: number[] = [];
    start({ sqs, queueUrl: url, receiveLoops: 1, receiveLingerMs: 300, handler: async () => (pickedAt.push(Date.now()), { action: 'delete' }) });
    await sleep(50);
    await send(sqs, url, 'a');
    await until(() => pickedAt.length === 1);
    const bSentAt = Date.now();
    await send(sqs, url, 'b');
    await until(() => pickedAt.length === 2);
    // b arrived during a's linger: it waits for the linger's end, never much past it.
    expect(pickedAt[1]! - pickedAt[0]!).toBeGreaterThanOrEqual(290);
    expect(pickedAt[1]! - bSentAt).toBeLessThan(300 + 200);
    // Idle a while: the long poll (1 s here) waits on SQS's side, so one call at most…
    await sleep(400); // b's linger ends, and the long poll after it goes out
    const idleCalls = receives.length;
    await sleep(500);
    expect(receives.length - idleCalls).toBeLessThanOrEqual(1);
    // …and the next message is taken on arrival, not after a linger.
    const cSentAt = Date.now();
    await send(sqs, url, 'c');
    await until(() => pickedAt.length === 3);
    expect(pickedAt[2]! - cSentAt).toBeLessThan(150);
  });

  it('stop() does not wait out a long linger, and the loops standing by end too', async () => {
    const { sqs } = recordingClient();
    const url = queueUrl(false);
    let handled = 0;
    const poller = start({ sqs, queueUrl: url, receiveLoops: 3, receiveLingerMs: 1000, handler: async () => (handled++, { action: 'delete' }) });
    await sleep(50);
    await send(sqs, url, 'a');
    await until(() => handled === 1);
    await sleep(20); // the delete's linger (50 ms) is still out; the receive linger is at its start
    const stopping = Date.now();
    await poller.stop();
    expect(Date.now() - stopping).toBeLessThan(600);
  });

  it('with a linger, one receive is out at a time while the queue runs dry; a full receive (a backlog) brings in the other loops', async () => {
    const { sqs, out } = recordingClient();
    const url = queueUrl(false);
    let handled = 0;
    start({ sqs, queueUrl: url, receiveLoops: 4, concurrency: 64, receiveLingerMs: 20, handler: async () => (await sleep(200), handled++, { action: 'delete' }) });
    for (const body of ['a', 'b', 'c']) {
      await sleep(60);
      await send(sqs, url, body);
    }
    await until(() => handled === 3);
    expect(out.max).toBe(1);
    // A backlog: 40 messages at once, so receives come back full.
    await Promise.all(Array.from({ length: 40 }, (_, i) => send(sqs, url, `burst-${i}`)));
    await until(() => handled === 43);
    expect(out.max).toBeGreaterThan(1);
  });

  it('without a linger every loop long-polls, as before', async () => {
    const { sqs, out } = recordingClient();
    const url = queueUrl(false);
    start({ sqs, queueUrl: url, receiveLoops: 4, receiveLingerMs: 0, handler: async () => ({ action: 'delete' }) });
    await until(() => out.now === 4);
    expect(out.max).toBe(4);
  });

  it('FIFO: gathered receives keep each conversation in order, one of it in flight at a time', async () => {
    const { sqs } = recordingClient();
    const url = queueUrl(true);
    const order = new Map<string, string[]>();
    const inFlight = new Map<string, number>();
    let overlaps = 0;
    let handled = 0;
    start({
      sqs,
      queueUrl: url,
      receiveLoops: 1,
      receiveLingerMs: 30,
      handler: async (m) => {
        const group = m.groupId!;
        if ((inFlight.get(group) ?? 0) > 0) overlaps += 1;
        inFlight.set(group, (inFlight.get(group) ?? 0) + 1);
        order.set(group, [...(order.get(group) ?? []), m.body.toString('utf8')]);
        await sleep(10);
        inFlight.set(group, inFlight.get(group)! - 1);
        handled += 1;
        return { action: 'delete' };
      },
    });
    await sleep(50);
    const groups = ['g1', 'g2', 'g3'];
    for (let i = 0; i < 6; i++) {
      for (const g of groups) await send(sqs, url, `${g}-${i}`, g);
      await sleep(7);
    }
    await until(() => handled === 18, 5000);
    for (const g of groups) expect(order.get(g)).toEqual([0, 1, 2, 3, 4, 5].map((i) => `${g}-${i}`));
    expect(overlaps).toBe(0);
  });
});
