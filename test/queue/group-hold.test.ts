import { RetryableError } from '../../src/errors';
import type { LineRegistry } from '../../src/lines/registry';
import { createRegistry } from '../../src/observability/metrics';
import { encodeJob } from '../../src/outbound/job-message';
import { OutboundSender, type OutboundSenderOptions } from '../../src/outbound/sender';
import { GroupHold } from '../../src/queue/group-hold';
import type { ReceivedMessage } from '../../src/queue/message';
import type { HandlerOutcome } from '../../src/queue/poller';
import { SequencedHandler } from '../../src/queue/sequenced-handler';
import { capturedLogger } from '../support/logs';

const logger = capturedLogger('error').logger;
const tick = (ms = 5) => new Promise<void>((r) => setTimeout(r, ms));

function received(messageId: string, body = '{}', groupId?: string): ReceivedMessage {
  return { messageId, receiveCount: 1, ...(groupId ? { groupId } : {}), body: Buffer.from(body), attributes: {}, original: { body, attributes: {} } };
}

/** A gate per message: its handler waits until the test opens it. */
function gates() {
  const open = new Map<string, () => void>();
  return {
    wait: (id: string) => new Promise<void>((resolve) => open.set(id, resolve)),
    open: (id: string) => open.get(id)?.(),
  };
}

/**
 * The sender with only what these tests reach: the line lookup, which is the first thing a job
 * does, and the parker for unknown lines. Everything past the lookup is never reached.
 */
function senderWith(byId: LineRegistry['byId']): OutboundSender {
  const unreachable = new Proxy({}, { get: () => () => Promise.reject(new Error('not reached in this test')) });
  return new OutboundSender({
    store: unreachable,
    lines: { byId } as LineRegistry,
    secrets: unreachable,
    graph: unreachable,
    rate: unreachable,
    reporter: { park: async () => undefined } as unknown as OutboundSenderOptions['reporter'],
    uncertainGraceMs: 5000,
    sendTimeoutMs: 1000,
    logger,
    registry: createRegistry({ defaultMetrics: false }),
  } as OutboundSenderOptions);
}

const jobFor = (to: string, n: number) =>
  received(`${to}-${n}`, encodeJob(`out-${to}-${n}`, { lineId: 'line-1', to, idempotencyKey: `k-${to}-${n}`, source: 'api', body: { type: 'text', text: { body: 'hi' } } as never }));

describe('GroupHold: one hold for conversations and recipients', () => {
  it('forgets a group once it drains, and a retried group once its time has passed (10,000 groups → 0)', async () => {
    let clock = 1_000_000;
    const hold = new GroupHold({ retryPolicy: { baseSeconds: 1, maxSeconds: 1 }, heldReason: 'recipient_held', metricsPrefix: 'test', logger, registry: createRegistry({ defaultMetrics: false }), now: () => clock });
    await Promise.all(Array.from({ length: 10_000 }, (_, i) => hold.run(`g${i}`, received(`d${i}`), async () => ({ action: 'delete' }))));
    expect(hold.stateSize).toBe(0);

    const retried = await Promise.all(Array.from({ length: 10_000 }, (_, i) => hold.run(`g${i}`, received(`r${i}`), async (): Promise<HandlerOutcome> => ({ action: 'retry', delaySeconds: 3 }))));
    expect(new Set(retried.map((o) => o.action === 'retry' && o.delaySeconds))).toEqual(new Set([3]));
    // Each retried group waits for its message: kept while it may come back...
    expect(hold.stateSize).toBe(10_000);
    clock += 3_000;
    // ...and forgotten once its time has passed, at the next message of any group.
    await hold.run('other', received('o1'), async () => ({ action: 'delete' }));
    expect(hold.stateSize).toBe(0);
  });

  it('the sender keeps no state for recipients whose retried jobs went elsewhere (10,000 recipients → 0)', async () => {
    let fail = true;
    const sender = senderWith(async () => {
      if (fail) throw new RetryableError('outbound_store_unavailable', 'DynamoDB is throttling');
      return undefined; // an unknown line: the job is parked and done
    });
    const first = await Promise.all(Array.from({ length: 10_000 }, (_, i) => sender.handle(jobFor(`1650555${String(i).padStart(4, '0')}`, 0))));
    // The sender's own backoff on a first receive: 1 s.
    expect(new Set(first.map((o) => o.action === 'retry' && o.delaySeconds))).toEqual(new Set([1]));
    expect(sender.heldState).toBe(10_000);
    // Their retries went to another worker (real SQS hands a group to any of them): nothing here comes back for them.
    await tick(1100);
    fail = false;
    expect(await sender.handle(jobFor('16505560000', 0))).toEqual({ action: 'delete' });
    await tick();
    expect(sender.heldState).toBe(0);
  });

  it('holds the sender\'s jobs with the worker\'s delay rule: the retried one, the ones queued with it, and one received after it', async () => {
    const error = () => new RetryableError('outbound_store_unavailable', 'throttled', { retryAfterMs: 4000 });
    const g = gates();
    const sender = senderWith(async () => {
      await g.wait('sender');
      throw error();
    });
    const worker = new SequencedHandler({
      logger,
      registry: createRegistry({ defaultMetrics: false }),
      retryPolicy: { baseSeconds: 1, maxSeconds: 1 },
      handler: async () => {
        await g.wait('worker');
        throw error();
      },
    });
    const fromSender = [sender.handle(jobFor('16505550001', 1)), sender.handle(jobFor('16505550001', 2))];
    const fromWorker = [worker.handle(received('w1', '{}', 'conv')), worker.handle(received('w2', '{}', 'conv'))];
    await tick();
    g.open('sender');
    g.open('worker');
    const [s1, s2] = await Promise.all(fromSender);
    const [w1, w2] = await Promise.all(fromWorker);
    const s3 = await sender.handle(jobFor('16505550001', 3));
    const w3 = await worker.handle(received('w3', '{}', 'conv'));
    const delays = (outcomes: HandlerOutcome[]) => outcomes.map((o) => (o.action === 'retry' ? o.delaySeconds : undefined));
    // The retried message asked for 4 s; the ones held behind it come back 1 s later, whichever component.
    expect(delays([s1!, s2!, s3])).toEqual([4, 5, 5]);
    expect(delays([w1!, w2!, w3])).toEqual([4, 5, 5]);
    expect([s2, s3].map((o) => o!.action === 'retry' && o!.reason)).toEqual(['recipient_held', 'recipient_held']);
    expect([w2, w3].map((o) => o!.action === 'retry' && o!.reason)).toEqual(['conversation_held', 'conversation_held']);
  });

  it('shutdown cancels the messages waiting for their turn: handed back at once, never started', async () => {
    const g = gates();
    const started: string[] = [];
    const worker = new SequencedHandler({
      logger,
      registry: createRegistry({ defaultMetrics: false }),
      retryPolicy: { baseSeconds: 10, maxSeconds: 900 },
      handler: async (m) => {
        started.push(m.messageId);
        if (m.messageId === 'a1') await g.wait('a1');
        return { action: 'delete' };
      },
    });
    const shutdown = new AbortController();
    const a1 = worker.handle(received('a1', '{}', 'A'), { signal: shutdown.signal });
    const a2 = worker.handle(received('a2', '{}', 'A'), { signal: shutdown.signal });
    await tick();
    expect(started).toEqual(['a1']);
    shutdown.abort();
    // a2 answers without waiting for a1, which the shutdown does not cut short.
    const settled = await Promise.race([a2, tick(200).then(() => 'still waiting' as const)]);
    expect(settled).toEqual({ action: 'retry', reason: 'conversation_held', delaySeconds: 0 });
    g.open('a1');
    expect(await a1).toEqual({ action: 'delete' });
    await tick();
    expect(started).toEqual(['a1']);
    // A message received after the abort does not start either.
    expect(await worker.handle(received('a3', '{}', 'A'), { signal: shutdown.signal })).toMatchObject({ action: 'retry' });
    expect(started).toEqual(['a1']);
  });

  it('the sender hands a recipient\'s waiting jobs back on shutdown too', async () => {
    const g = gates();
    const looked: string[] = [];
    const sender = senderWith(async () => {
      looked.push('lookup');
      await g.wait('first');
      return undefined;
    });
    const shutdown = new AbortController();
    const first = sender.handle(jobFor('16505550009', 1), { signal: shutdown.signal });
    const second = sender.handle(jobFor('16505550009', 2), { signal: shutdown.signal });
    await tick();
    shutdown.abort();
    expect(await second).toEqual({ action: 'retry', reason: 'recipient_held', delaySeconds: 0 });
    g.open('first');
    expect(await first).toEqual({ action: 'delete' });
    await tick();
    expect(looked).toEqual(['lookup']);
    expect(sender.heldState).toBe(0);
  });
});
