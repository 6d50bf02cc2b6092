import type { MinuteBucket } from './contract.js';
import { h, svg } from './dom.js';

/** Outcome colours, shared by badges (app.css) and charts. */
export const OUTCOME_COLOURS: Record<string, string> = {
  delivered: '#1f9d55',
  not_forwarded: '#64748b',
  duplicate: '#8792a2',
  retrying: '#d97706',
  in_progress: '#3b82f6',
  parked: '#dc2626',
  sent: '#7c3aed',
  failed: '#be185d',
};

/**
 * Events per minute, stacked by outcome: an SVG that scales with its container, with a legend and a
 * text summary for screen readers.
 */
export function perMinuteChart(buckets: MinuteBucket[], pixelWidth: number, series = Object.keys(OUTCOME_COLOURS)): HTMLElement {
  // Drawn at the container's pixel width, so the axis text keeps its size from phone to desktop.
  const width = Math.max(280, Math.round(pixelWidth));
  const height = 180;
  const labelEvery = width < 500 ? 30 : 15;
  const pad = { left: 34, right: 8, top: 10, bottom: 22 };
  const totals = buckets.map((b) => series.reduce((sum, s) => sum + (b.counts[s] ?? 0), 0));
  const max = Math.max(1, ...totals);
  const nice = max <= 5 ? max : Math.ceil(max / 5) * 5;
  const slot = (width - pad.left - pad.right) / Math.max(1, buckets.length);
  const y = (v: number) => pad.top + (height - pad.top - pad.bottom) * (1 - v / nice);
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': `Events per minute over the last ${buckets.length} minutes` });
  for (const tick of [0, nice / 2, nice]) {
    chart.append(svg('line', { x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick), class: 'grid' }));
    chart.append(svg('text', { x: pad.left - 6, y: y(tick) + 4, 'text-anchor': 'end', class: 'axis' }, String(Math.round(tick))));
  }
  buckets.forEach((bucket, i) => {
    let base = 0;
    const x = pad.left + i * slot + slot * 0.15;
    for (const s of series) {
      const v = bucket.counts[s] ?? 0;
      if (v === 0) continue;
      const rect = svg('rect', { x, width: Math.max(1, slot * 0.7), y: y(base + v), height: Math.max(1, y(base) - y(base + v)), fill: OUTCOME_COLOURS[s] ?? '#999', rx: 1 });
      rect.append(svg('title', {}, `${new Date(bucket.minute).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}: ${v} ${s.replace('_', ' ')}`));
      chart.append(rect);
      base += v;
    }
    const last = i === buckets.length - 1;
    if ((i % labelEvery === 0 && buckets.length - i > labelEvery / 2) || last) {
      const label = new Date(bucket.minute).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      chart.append(svg('text', { x: last ? width - pad.right : pad.left + i * slot, y: height - 6, 'text-anchor': last ? 'end' : 'start', class: 'axis' }, label));
    }
  });
  const sums = series.map((s) => [s, buckets.reduce((n, b) => n + (b.counts[s] ?? 0), 0)] as const);
  const legend = h(
    'ul',
    { class: 'legend' },
    sums.map(([s, n]) => h('li', {}, h('span', { class: 'swatch', style: `background:${OUTCOME_COLOURS[s]}` }), `${s.replace('_', ' ')} `, h('strong', {}, String(n)))),
  );
  return h('figure', { class: 'chart-box' }, chart, legend);
}

/** Horizontal bars: how many of each (DLQ reasons). Each bar is a button that filters by its label. */
export function barList(rows: { label: string; value: number }[], onPick?: (label: string) => void, picked?: string): HTMLElement {
  const max = Math.max(1, ...rows.map((r) => r.value));
  return h(
    'ul',
    { class: 'bars' },
    rows.map((r) =>
      h(
        'li',
        {},
        h(
          'button',
          { type: 'button', class: `bar${picked === r.label ? ' picked' : ''}`, 'aria-pressed': String(picked === r.label), onclick: () => onPick?.(r.label) },
          h('span', { class: 'bar-label' }, r.label),
          h('span', { class: 'bar-track' }, h('span', { class: 'bar-fill', style: `width:${Math.round((100 * r.value) / max)}%` })),
          h('span', { class: 'bar-value' }, String(r.value)),
        ),
      ),
    ),
  );
}
