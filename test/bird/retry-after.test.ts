import { parseRetryAfter } from '../../src/bird';

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-22T07:00:00Z');
  it.each([
    ['1', 1000],
    ['  30 ', 30_000],
    ['0', 0],
    ['Sun, 22 Nov 2026 07:00:05 GMT', 5000],
    ['Sun, 22 Nov 2026 06:59:00 GMT', 0],
    ['soon', undefined],
    ['-5', undefined],
    ['', undefined],
  ])('%j → %j ms', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
  it('is undefined without a header', () => {
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});
