import { LineRateLimiter } from '../../src/outbound/rate-limiter';

function limiter() {
  let now = 1_000_000;
  const waits: number[] = [];
  const rate = new LineRateLimiter({
    clock: () => now,
    wait: async (ms) => {
      waits.push(ms);
      now += ms;
    },
  });
  return { rate, waits, advance: (ms: number) => (now += ms) };
}

describe('LineRateLimiter', () => {
  it('lets a second\'s worth through at once, then paces at the line rate', async () => {
    const { rate, waits } = limiter();
    for (let i = 0; i < 10; i++) await rate.acquire('a', 10);
    expect(waits).toEqual([]);
    await rate.acquire('a', 10);
    await rate.acquire('a', 10);
    expect(waits).toEqual([100, 100]);
  });

  it('keeps lines apart', async () => {
    const { rate, waits } = limiter();
    for (let i = 0; i < 5; i++) await rate.acquire('a', 5);
    await rate.acquire('b', 5);
    expect(waits).toEqual([]);
  });

  it('halves the rate for a minute after 130429, then restores it', async () => {
    const { rate, advance } = limiter();
    expect(rate.currentRate('a', 80)).toBe(80);
    rate.slowDown('a');
    expect(rate.currentRate('a', 80)).toBe(40);
    rate.slowDown('a');
    expect(rate.currentRate('a', 80)).toBe(20);
    advance(60_001);
    expect(rate.currentRate('a', 80)).toBe(80);
  });

  it('a halved line waits twice as long per send', async () => {
    const { rate, waits, advance } = limiter();
    for (let i = 0; i < 10; i++) await rate.acquire('a', 10);
    advance(1000);
    rate.slowDown('a');
    for (let i = 0; i < 5; i++) await rate.acquire('a', 10);
    await rate.acquire('a', 10);
    expect(waits).toEqual([200]);
  });
});
