import { api, query } from './api.js';
import type { BillableView, LatencyFigures, LineProblemView, LineSummary, MinuteBucket, Page } from './contract.js';
import { perMinuteChart } from './charts.js';
import { ago, clear, code, empty, h } from './dom.js';

/** Health of a line from its last hour: what an operator should look at first. */
function health(line: LineSummary): { level: 'ok' | 'warn' | 'bad' | 'idle'; text: string } {
  if (!line.active) return { level: 'idle', text: 'Disabled' };
  const problems = line.problems ?? [];
  if (problems.length > 0) return { level: 'bad', text: `${problems.length === 1 ? 'A problem' : `${problems.length} problems`} on Meta's side` };
  if ((line.lastHour.parked ?? 0) > 0) return { level: 'bad', text: `${line.lastHour.parked} parked in the last hour` };
  if ((line.lastHour.retried ?? 0) > 0 || (line.lastHour.failed ?? 0) > 0) return { level: 'warn', text: 'Retries or failures in the last hour' };
  if (!line.lastEventAt) return { level: 'idle', text: 'No events yet' };
  return { level: 'ok', text: 'Healthy' };
}

/** Meta-side problems in red, each with what to do (the watcher and account webhooks find them). */
function problemList(problems: LineProblemView[]): HTMLElement | undefined {
  if (problems.length === 0) return undefined;
  return h(
    'ul',
    { class: 'problems', 'aria-label': 'Problems on Meta\'s side' },
    problems.map((p) =>
      h(
        'li',
        { class: 'problem' },
        h('strong', { class: 'problem-name' }, p.problem),
        p.detail ? h('span', { class: 'problem-detail' }, ` ${p.detail}`) : '',
        h('span', { class: 'muted' }, ' · since ', h('time', { datetime: p.since }, ago(p.since))),
        h('p', { class: 'problem-todo' }, p.todo),
      ),
    ),
  );
}

function duration(ms: number | null): string {
  if (ms === null) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60_000)} min`;
}

/** p50 / p95 of the last hour's deliveries and replies. */
function latencyList(latency: LineSummary['latency'] | undefined): HTMLElement | undefined {
  if (!latency) return undefined;
  const row = (label: string, title: string, f: LatencyFigures) =>
    h('div', { class: 'latency-row', title }, h('dt', {}, label), h('dd', {}, f.samples === 0 ? '—' : `p50 ${duration(f.p50Ms)} · p95 ${duration(f.p95Ms)}`));
  return h(
    'dl',
    { class: 'latency', 'aria-label': 'Delivery latency, last hour' },
    row('Meta → Bird', 'From Meta\'s message timestamp to delivered to Bird', latency.metaToBird),
    row('Received → reply sent', 'From the webhook received to the Flow\'s reply accepted by Meta', latency.receivedToReplySent),
  );
}

export async function renderOverview(main: HTMLElement): Promise<void> {
  const [lines, stats, billable] = await Promise.all([
    api.get<Page<LineSummary>>(`lines${query({ limit: 200 })}`),
    api.get<{ buckets: MinuteBucket[] }>('stats?minutes=60'),
    // No outbound table, no cost table.
    api.get<BillableView>('billable').catch(() => undefined),
  ]);
  clear(main);
  main.append(h('header', { class: 'page-head' }, h('h1', {}, 'Overview'), h('p', { class: 'sub' }, 'Every line, its health, and the last hour of events.')));
  const total = stats.buckets.reduce((n, b) => n + Object.values(b.counts).reduce((a, c) => a + c, 0), 0);
  const chartCard = h('section', { class: 'card', 'aria-labelledby': 'chart-title' }, h('h2', { id: 'chart-title' }, 'Events per minute, last hour'));
  main.append(chartCard);
  chartCard.append(
    total === 0
      ? empty('No events in the last hour.', ['Send one with ', code('npm run simulate -- message-text'), ', or point Meta at the webhook URL the gateway printed.'])
      : // The card's inner width: its padding is 18 px each side.
        perMinuteChart(stats.buckets, chartCard.clientWidth - 36),
  );
  if (billable) main.append(billableTable(billable));
  if (lines.items.length === 0) {
    main.append(h('section', { class: 'card' }, empty('No lines registered.', ['Register one with ', code('npm run lines -- put lines.json'), '.'])));
    return;
  }
  main.append(
    h(
      'section',
      { class: 'lines', 'aria-label': 'Lines' },
      lines.items.map((line) => {
        const state = health(line);
        const c = line.lastHour;
        return h(
          'article',
          { class: `card line line-${state.level}` },
          h(
            'header',
            {},
            h('span', { class: `dot dot-${state.level}`, 'aria-hidden': 'true' }),
            h('h2', {}, h('a', { href: `#/events?lineId=${encodeURIComponent(line.lineId)}` }, line.lineId)),
            h('span', { class: 'muted' }, `${line.transport} · statuses: ${line.forwardStatuses}${line.displayPhoneNumber ? ` · ${line.displayPhoneNumber}` : ''}`),
          ),
          h('p', { class: `health health-${state.level}` }, state.text),
          problemList(line.problems ?? []) ?? '',
          latencyList(line.latency) ?? '',
          h('p', { class: 'muted' }, 'Last event: ', h('time', { datetime: line.lastEventAt ?? '' }, ago(line.lastEventAt))),
          h(
            'dl',
            { class: 'counts' },
            (['delivered', 'duplicate', 'retried', 'parked', 'sent', 'failed'] as const).map((k) => h('div', { class: `count count-${k}${(c[k] ?? 0) > 0 ? ' nonzero' : ''}` }, h('dt', {}, k), h('dd', {}, String(c[k] ?? 0)))),
          ),
        );
      }),
    ),
  );
}

/** Today's billable replies per line and pricing category: counts, not money (the README says how to price them). */
function billableTable(view: BillableView): HTMLElement {
  const card = h('section', { class: 'card', 'aria-labelledby': 'billable-title' }, h('h2', { id: 'billable-title' }, 'Billable replies today (UTC)'));
  if (view.rows.length === 0) {
    card.append(h('p', { class: 'muted' }, 'No billable replies today.'));
    return card;
  }
  card.append(
    h(
      'table',
      { class: 'billable' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Line'), h('th', {}, 'Category'), h('th', {}, 'Replies'))),
      h('tbody', {}, view.rows.map((r) => h('tr', {}, h('td', {}, r.lineId), h('td', {}, r.category), h('td', {}, String(r.count))))),
    ),
  );
  return card;
}
