import { api, query } from './api.js';
import type { EventDetailView, EventSummary, LineSummary, Page } from './contract.js';
import { ago, badge, clear, code, empty, h, time } from './dom.js';

export interface EventsParams {
  lineId?: string;
  kind?: string;
  outcome?: string;
  search?: string;
}

/** A search box takes a wamid or a contact: a wamid starts with `wamid.`; anything with 6+ digits is a contact. */
function searchParams(search: string | undefined): { wamid?: string; contact?: string } {
  const s = search?.trim();
  if (!s) return {};
  return s.startsWith('wamid.') ? { wamid: s } : { contact: s };
}

function row(e: EventSummary, fresh = false): HTMLTableRowElement {
  const href = `#/events/${encodeURIComponent(e.handle)}`;
  return h(
    'tr',
    { class: fresh ? 'fresh' : '', 'data-handle': e.handle },
    h('td', {}, h('time', { datetime: e.receivedAt, title: time(e.receivedAt) }, ago(e.receivedAt))),
    h('td', {}, e.lineId),
    h('td', {}, h('a', { href }, `${e.kind} · ${e.type}`)),
    h('td', {}, e.contact ?? '—'),
    h('td', {}, badge(e.outcome), e.duplicates > 0 ? h('span', { class: 'chip' }, `+${e.duplicates} dup`) : null, e.retries > 0 ? h('span', { class: 'chip' }, `${e.retries} retries`) : null),
    h('td', { class: 'muted' }, e.reason ?? ''),
  );
}

export async function renderEvents(main: HTMLElement, params: EventsParams, navigate: (p: EventsParams) => void, onTail: (listener: ((handle: string) => void) | undefined) => void): Promise<void> {
  const lines = await api.get<Page<LineSummary>>('lines?limit=200');
  let cursor: string | undefined;
  clear(main);
  const select = (name: keyof EventsParams, label: string, options: [string, string][]) =>
    h(
      'label',
      {},
      label,
      h(
        'select',
        { name, onchange: (ev: Event) => navigate({ ...params, [name]: (ev.target as HTMLSelectElement).value || undefined }) },
        options.map(([value, text]) => h('option', { value, selected: (params[name] ?? '') === value }, text)),
      ),
    );
  const form = h(
    'form',
    {
      class: 'filters',
      role: 'search',
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        const value = (form.querySelector('input[name=search]') as HTMLInputElement).value;
        navigate({ ...params, search: value || undefined });
      },
    },
    select('lineId', 'Line', [['', 'All lines'], ...lines.items.map((l): [string, string] => [l.lineId, l.lineId])]),
    select('kind', 'Kind', [['', 'Any kind'], ['message', 'Messages'], ['status', 'Statuses'], ['account', 'Account'], ['error', 'Errors'], ['unknown', 'Unknown']]),
    select('outcome', 'Outcome', [['', 'Any outcome'], ['delivered', 'Delivered'], ['not_forwarded', 'Not forwarded'], ['parked', 'Parked'], ['retrying', 'Retrying'], ['in_progress', 'In progress'], ['duplicate', 'Had duplicates']]),
    h('label', { class: 'grow' }, 'Search', h('input', { name: 'search', type: 'search', placeholder: 'wamid.… or the whole phone number', autocomplete: 'off' })),
    h('button', { type: 'submit' }, 'Search'),
  );
  // The property, not the attribute: a searched number never lands in the page's HTML.
  (form.querySelector('input[name=search]') as HTMLInputElement).value = params.search ?? '';
  // A search is a lookup, not a tail: the tail resumes when the search is cleared.
  const liveToggle = h('input', { type: 'checkbox', id: 'live', checked: !params.search, disabled: Boolean(params.search) }) as HTMLInputElement;
  const status = h('span', { class: params.search ? 'live-status muted' : 'live-status', 'aria-live': 'polite' }, params.search ? 'Off while searching' : 'Live');
  main.append(
    h('header', { class: 'page-head' }, h('h1', {}, 'Events'), h('p', { class: 'sub' }, 'Every inbound event with its outcome. Contacts are masked; open an event for its journey and text.')),
    form,
    h('div', { class: 'toolbar' }, h('label', { class: 'switch', for: 'live' }, liveToggle, ' Live tail'), status),
  );
  const body = h('tbody', { 'aria-live': 'polite' });
  const table = h(
    'div',
    { class: 'table-wrap' },
    h('table', { class: 'events' }, h('thead', {}, h('tr', {}, ['Received', 'Line', 'Event', 'Contact', 'Outcome', 'Reason'].map((t) => h('th', { scope: 'col' }, t)))), body),
  );
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Load more');
  const emptyBox = h('div', {});
  main.append(table, emptyBox, more);

  const filters = { lineId: params.lineId, kind: params.kind, outcome: params.outcome, ...searchParams(params.search) };
  const load = async () => {
    const page = await api.get<Page<EventSummary>>(`events${query({ ...filters, limit: 50, cursor })}`);
    for (const e of page.items) body.append(row(e));
    cursor = page.cursor;
    more.hidden = !cursor;
    clear(emptyBox);
    if (body.children.length === 0) {
      emptyBox.append(
        params.search || params.kind || params.outcome
          ? empty('No events match these filters.', 'Clear the filters, or search for the whole number as Meta sends it (country code, no +).')
          : empty('No events yet.', ['Events appear here live as they arrive. Try ', code('npm run simulate -- message-text'), '.']),
      );
    }
  };
  more.addEventListener('click', () => void load());
  await load();

  // Live tail: a step for an event we list (or a new one that passes the filters) refreshes its row.
  const searching = Boolean(params.search);
  onTail(
    searching
      ? undefined
      : async (handle) => {
          if (!liveToggle.checked || handle.startsWith('ob_')) return;
          const e = await api.get<EventDetailView>(`events/${encodeURIComponent(handle)}`).catch(() => undefined);
          if (!e || (filters.lineId && e.lineId !== filters.lineId) || (filters.kind && e.kind !== filters.kind) || (filters.outcome && e.outcome !== filters.outcome)) return;
          const existing = body.querySelector(`tr[data-handle="${CSS.escape(handle)}"]`);
          const fresh = row(e, true);
          if (existing) existing.replaceWith(fresh);
          else body.prepend(fresh);
          clear(emptyBox);
        },
  );
  liveToggle.addEventListener('change', () => (status.textContent = liveToggle.checked ? 'Live' : 'Paused'));
}
