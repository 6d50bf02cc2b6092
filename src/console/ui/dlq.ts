import { api, query } from './api.js';
import type { DlqSummary, Page } from './contract.js';
import { barList } from './charts.js';
import { ago, clear, code, empty, h, time } from './dom.js';
import { confirmDialog, toast } from './shell.js';

export interface DlqParams {
  queue: 'inbound' | 'outbound';
  reason?: string;
}

export async function renderDlq(main: HTMLElement, params: DlqParams, navigate: (p: DlqParams) => void): Promise<void> {
  const all = await api.get<Page<DlqSummary> & { reasons: string[]; total: number }>(`dlq${query({ queue: params.queue, limit: 200 })}`).catch((error: Error) => error);
  clear(main);
  main.append(h('header', { class: 'page-head' }, h('h1', {}, 'Dead-letter queues'), h('p', { class: 'sub' }, 'What could not be delivered, with the reason. Fix the cause, then redrive: completed events are skipped.')));
  main.append(
    h(
      'div',
      { class: 'tabs', role: 'tablist' },
      (['inbound', 'outbound'] as const).map((q) =>
        h('a', { role: 'tab', href: `#/dlq?queue=${q}`, 'aria-selected': String(params.queue === q), class: params.queue === q ? 'tab active' : 'tab' }, q === 'inbound' ? 'Inbound events' : 'Outbound replies'),
      ),
    ),
  );
  if (all instanceof Error) {
    main.append(h('section', { class: 'card' }, empty(`The ${params.queue} DLQ is not available here.`, all.message)));
    return;
  }
  const rows = params.reason ? all.items.filter((r) => r.reason === params.reason) : all.items;
  const counts = new Map<string, number>();
  for (const r of all.items) counts.set(r.reason, (counts.get(r.reason) ?? 0) + 1);
  if (all.items.length === 0) {
    main.append(h('section', { class: 'card' }, empty('Nothing parked. ', ['Parked events appear here with their reason; ', code('npm run dlq -- list'), ' shows the same from a terminal.'])));
    if (params.queue === 'inbound') main.append(replayHint(all.items));
    return;
  }
  const redriveAll = async () => {
    const what = params.reason ? `${rows.length} message(s) with reason “${params.reason}”` : `all ${all.items.length} message(s)`;
    if (!(await confirmDialog('Redrive?', `Send ${what} back to the main queue.`, 'Redrive'))) return;
    const r = await api.post<{ redriven: number; failed: number }>(`dlq/redrive${query({ queue: params.queue, reason: params.reason })}`);
    toast(`${r.redriven} redriven${r.failed ? `, ${r.failed} failed` : ''}.`);
    navigate(params);
  };
  const purge = async () => {
    if (!(await confirmDialog('Purge the DLQ?', `Delete all ${all.items.length} message(s) from the ${params.queue} DLQ. This cannot be undone.`, 'Purge', true))) return;
    const r = await api.post<{ purged: number }>(`dlq/purge${query({ queue: params.queue })}`);
    toast(`${r.purged} purged.`);
    navigate(params);
  };
  main.append(
    h(
      'section',
      { class: 'card' },
      h('h2', {}, 'By reason'),
      barList(
        [...counts].map(([label, value]) => ({ label, value })),
        (reason) => navigate({ ...params, reason: params.reason === reason ? undefined : reason }),
        params.reason,
      ),
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', class: 'primary', onclick: redriveAll }, params.reason ? `Redrive ${rows.length} “${params.reason}”` : `Redrive all ${all.items.length}`),
        h('button', { type: 'button', class: 'danger', onclick: purge }, 'Purge…'),
        params.reason ? h('a', { href: `#/dlq?queue=${params.queue}`, class: 'button secondary' }, 'Clear filter') : null,
      ),
    ),
  );
  const redriveOne = (r: DlqSummary) => async () => {
    if (!(await confirmDialog('Redrive this message?', `Reason: ${r.reason}. It goes back to the main queue.`, 'Redrive'))) return;
    const out = await api.post<{ redriven: number }>(`dlq/${encodeURIComponent(r.id)}/redrive${query({ queue: params.queue })}`);
    toast(out.redriven > 0 ? 'Redriven.' : 'Not found: it may have been redriven already.');
    navigate(params);
  };
  main.append(
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'dlq' },
        h('thead', {}, h('tr', {}, ['Parked', 'Reason', 'Line', params.queue === 'outbound' ? 'Reply' : 'Event', 'Received', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          {},
          rows.map((r) =>
            h(
              'tr',
              { 'data-id': r.id },
              h('td', {}, h('time', { datetime: r.parkedAt ?? '' }, ago(r.parkedAt))),
              h('td', {}, h('span', { class: 'chip chip-reason' }, r.reason)),
              h('td', {}, r.lineId ?? '—'),
              h(
                'td',
                { class: 'mono' },
                r.handle
                  ? h(
                      'a',
                      { href: `#/${params.queue === 'outbound' ? 'outbound' : 'events'}/${encodeURIComponent(r.handle)}` },
                      r.handle,
                    )
                  : 'whole message',
              ),
              h('td', {}, time(r.receivedAt)),
              h('td', {}, h('button', { type: 'button', class: 'small', onclick: redriveOne(r), 'aria-label': `Redrive ${r.handle ?? r.id}` }, 'Redrive')),
            ),
          ),
        ),
      ),
    ),
  );
  if (params.queue === 'inbound') main.append(replayHint(rows));
}

/**
 * Payloads gone from the queue (purged, or past the DLQ's 14 days) are still in the archive: the
 * replay command for the range of what is shown here (else the last 24 hours).
 */
function replayHint(rows: DlqSummary[]): HTMLElement {
  const times = rows.map((r) => r.receivedAt).filter((t): t is string => !!t).sort();
  const to = new Date();
  const from = times[0] ? new Date(Date.parse(times[0]) - 60_000) : new Date(to.getTime() - 86_400_000);
  return h(
    'section',
    { class: 'card' },
    h('h2', {}, 'Lost from the queue?'),
    h('p', {}, 'Every accepted webhook is archived with its signature. Replay a range from a terminal: signatures are checked again, and events that already completed are skipped.'),
    code(`npm run replay -- --from ${from.toISOString()} --to ${to.toISOString()} --dry-run`),
  );
}
