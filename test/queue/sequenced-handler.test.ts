import { RetryableError } from '../../src/errors';
import { createRegistry } from '../../src/observability/metrics';
import type { ReceivedMessage } from '../../src/queue/message';
import type { HandlerOutcome } from '../../src/queue/poller';
import { SequencedHandler } from '../../src/queue/sequenced-handler';
import { capturedLogger } from '../support/logs';

const message = (messageId: string, groupId?: string, receiveCount = 1): ReceivedMessage => ({
  messageId,
  receiveCount,
  ...(groupId ? { groupId } : {}),
  body: Buffer.from('{}'),
  attributes: {},
  original: { body: '{}', attributes: {} },
});

describe('SequencedHandler', () => {
  let clock = 1_000_000;
  const log: string[] = [];
  let gates: Map<string, () => void>;
  let outcomes: Map<string, HandlerOutcome | Error>;

  function handlerUnderTest() {
    return new SequencedHandler({
      logger: capturedLogger('warn').logger,
      registry: createRegistry({ defaultMetrics: false }),
      retryPolicy: { baseSeconds: 10, maxSeconds: 900 },
      now: () => clock,
      handler: async (m) => {
        log.push(`start ${m.messageId}`);
        await new Promise<void>((resolve) => (gates.get(m.messageId) ? gates.set(m.messageId, resolve) : resolve()));
        log.push(`end ${m.messageId}`);
        const outcome = outcomes.get(m.messageId) ?? { action: 'delete' };
        if (outcome instanceof Error) throw outcome;
        return outcome;
      },
    });
  }

  beforeEach(() => {
    log.length = 0;
    gates = new Map();
    outcomes = new Map();
  });

  it('runs one message per group at a time in arrival order, groups in parallel; standard messages pass straight', async () => {
    const h = handlerUnderTest();
    gates.set('a1', () => undefined);
    const a1 = h.handle(message('a1', 'A'));
    const a2 = h.handle(message('a2', 'A'));
    const b1 = h.handle(message('b1', 'B'));
    const s1 = h.handle(message('s1'));
    await new Promise((r) => setTimeout(r, 10));
    // a1 holds its group; B and the standard message ran meanwhile; a2 has not started.
    expect([...log].sort()).toEqual(['end b1', 'end s1', 'start a1', 'start b1', 'start s1']);
    gates.get('a1')!();
    await Promise.all([a1, a2, b1, s1]);
    expect(log.slice(5)).toEqual(['end a1', 'start a2', 'end a2']);
  });

  it('a retried message sends the messages queued behind it back unprocessed, later than itself, and blocks its group until it returns', async () => {
    const h = handlerUnderTest();
    outcomes.set('a1', { action: 'retry', reason: 'bird_unavailable', delaySeconds: 17 });
    const [r1, r2, r3, other] = await Promise.all([
      h.handle(message('a1', 'A')),
      h.handle(message('a2', 'A')),
      h.handle(message('a3', 'A')),
      h.handle(message('b1', 'B')),
    ]);
    // The handler asked for 17 s (more than the first step's 10 s): that is the delay, and the held ones get 1 s more.
    expect(r1).toEqual({ action: 'retry', reason: 'bird_unavailable', delaySeconds: 17 });
    expect(r2).toEqual({ action: 'retry', reason: 'conversation_held', delaySeconds: 18 });
    expect(r3).toEqual({ action: 'retry', reason: 'conversation_held', delaySeconds: 18 });
    expect(other).toEqual({ action: 'delete' });
    expect(log.filter((l) => l.startsWith('start'))).toEqual(['start a1', 'start b1']);

    // A message of A received 3 s later (the stand-in does not hold the group) waits for a1 too.
    clock += 3000;
    expect(await h.handle(message('a4', 'A'))).toEqual({ action: 'retry', reason: 'conversation_held', delaySeconds: 15 });
    // a1 comes back and goes through; then the group flows again.
    clock += 14_000;
    outcomes.delete('a1');
    expect(await h.handle(message('a1', 'A', 2))).toEqual({ action: 'delete' });
    expect(await h.handle(message('a2', 'A', 2))).toEqual({ action: 'delete' });
    expect(log.filter((l) => l.startsWith('start'))).toEqual(['start a1', 'start b1', 'start a1', 'start a2']);
  });

  it('a thrown error becomes a retry with a delay it fixes (the top of the backoff step, or a longer Retry-After), and holds the group the same way', async () => {
    const h = handlerUnderTest();
    outcomes.set('a1', new RetryableError('bird_rate_limited', 'slow down', { retryAfterMs: 2500 }));
    const [r1, r2] = await Promise.all([h.handle(message('a1', 'A')), h.handle(message('a2', 'A'))]);
    // Retry-After 2.5 s is shorter than the first step (10 s): the step's top wins, as in the poller.
    expect(r1).toEqual({ action: 'retry', reason: 'bird_rate_limited', delaySeconds: 10 });
    expect(r2).toEqual({ action: 'retry', reason: 'conversation_held', delaySeconds: 11 });

    outcomes.set('b1', new Error('boom'));
    const [b1, b2] = await Promise.all([h.handle(message('b1', 'B', 3)), h.handle(message('b2', 'B'))]);
    // Third receive: the step is 10 × 2² = 40 s; its top, without jitter, so the held ones know when it is back.
    expect(b1).toEqual({ action: 'retry', reason: 'unexpected_error', delaySeconds: 40 });
    expect(b2).toEqual({ action: 'retry', reason: 'conversation_held', delaySeconds: 41 });
  });
});
