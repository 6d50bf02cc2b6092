import { metaTime } from '../../src/journal/journey';
import { latencyFigures, metaToBirdMs, receivedToReplySentMs } from '../../src/journal/latency';
import { stageSeconds } from '../../src/observability/stage-latency';

describe('latency percentiles (nearest rank)', () => {
  it('p50 and p95 of the samples, in any order', () => {
    const samples = Array.from({ length: 100 }, (_, i) => (i + 1) * 10).reverse();
    expect(latencyFigures(samples)).toEqual({ samples: 100, p50Ms: 500, p95Ms: 950 });
    expect(latencyFigures([40, 10, 30, 20])).toEqual({ samples: 4, p50Ms: 20, p95Ms: 40 });
    expect(latencyFigures([7])).toEqual({ samples: 1, p50Ms: 7, p95Ms: 7 });
  });

  it('nulls without samples', () => expect(latencyFigures([])).toEqual({ samples: 0, p50Ms: null, p95Ms: null }));
});

describe('stage durations from the records', () => {
  const journey = [
    { at: '2026-06-01T12:00:03.000Z', step: 'claimed' },
    { at: '2026-06-01T12:00:04.500Z', step: 'delivered' },
    { at: '2026-06-01T12:00:05.000Z', step: 'sent' },
  ];

  it('Meta timestamp → delivered', () => {
    expect(metaToBirdMs({ metaAt: '2026-06-01T12:00:00.000Z', journey })).toBe(4500);
    expect(metaToBirdMs({ metaAt: '2026-06-01T12:00:00.000Z', journey: journey.slice(0, 1) })).toBeUndefined();
    expect(metaToBirdMs({ journey })).toBeUndefined();
    // A clock behind Meta's would give a negative duration: no sample.
    expect(metaToBirdMs({ metaAt: '2026-06-01T12:00:09.000Z', journey })).toBeUndefined();
  });

  it('inbound received → reply sent', () => {
    expect(receivedToReplySentMs({ inboundReceivedAt: '2026-06-01T12:00:02.000Z', journey })).toBe(3000);
    expect(receivedToReplySentMs({ journey })).toBeUndefined();
  });

  it('Meta\'s whole-second timestamps as ISO', () => {
    expect(metaTime('1749416383')).toBe('2025-06-08T20:59:43.000Z');
    expect(metaTime(undefined)).toBeUndefined();
    expect(metaTime('soon')).toBeUndefined();
  });

  it('histogram seconds only for known, non-negative durations', () => {
    expect(stageSeconds(1000, 3500)).toBe(2.5);
    expect(stageSeconds(undefined, 3500)).toBeUndefined();
    expect(stageSeconds(4000, 3500)).toBeUndefined();
  });
});
