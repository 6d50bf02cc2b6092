import { quantile, silenceVerdict } from '../../src/watch/silence';

const MIN = 60_000;
const NOW = Date.parse('2026-06-01T12:00:00Z');
/** `n` arrivals `gapMs` apart, the last one `quietMs` before now. */
const arrivals = (n: number, gapMs: number, quietMs: number) => Array.from({ length: n }, (_, i) => NOW - quietMs - (n - 1 - i) * gapMs);

describe('quantile (nearest rank)', () => {
  it.each([
    [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5, 5],
    [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.95, 10],
    [[10, 1], 0.5, 1],
    [[7], 0.95, 7],
  ])('%j q%s → %s', (values, q, expected) => expect(quantile(values, q)).toBe(expected));
  it('is undefined without values', () => expect(quantile([], 0.5)).toBeUndefined());
});

describe('inbound_silent: much longer than the line\'s own usual gap', () => {
  const rule = { minArrivals: 20, factor: 4, floorMs: 30 * MIN };

  it('a line with little history is never silent', () => {
    expect(silenceVerdict(arrivals(19, 5 * MIN, 24 * 60 * MIN), NOW, rule).silent).toBe(false);
  });

  it('a line receiving every 10 minutes is silent after more than 40 minutes, not after 35', () => {
    expect(silenceVerdict(arrivals(30, 10 * MIN, 35 * MIN), NOW, rule)).toMatchObject({ silent: false, usualGapMs: 10 * MIN });
    expect(silenceVerdict(arrivals(30, 10 * MIN, 41 * MIN), NOW, rule)).toMatchObject({ silent: true, usualGapMs: 10 * MIN, quietMs: 41 * MIN });
  });

  it('a busy line is not silent before the floor', () => {
    expect(silenceVerdict(arrivals(50, 5_000, 20 * MIN), NOW, rule).silent).toBe(false);
    expect(silenceVerdict(arrivals(50, 5_000, 31 * MIN), NOW, rule).silent).toBe(true);
  });

  it('the usual gap is the p95, so a few long night gaps make the rule more patient', () => {
    const history = [...arrivals(40, 2 * MIN, 0), NOW - 40 * 2 * MIN - 300 * MIN, NOW - 40 * 2 * MIN - 600 * MIN, NOW - 40 * 2 * MIN - 900 * MIN];
    const verdict = silenceVerdict(history.map((t) => t - 100 * MIN), NOW, rule);
    expect(verdict.usualGapMs).toBe(300 * MIN);
    expect(verdict.silent).toBe(false);
  });
});
