import { api, ApiError, query } from './api.js';
import type { LineSummary, OutboundDetail, OutboundSummary, Page } from './contract.js';
import { ago, badge, clear, empty, h, time } from './dom.js';
import { OUTBOUND_LABELS, timeline } from './detail.js';

export interface OutboundParams {
  lineId?: string;
  status?: string;
  to?: string;
}

const LADDER = ['queued', 'sending', 'sent', 'delivered', 'read'];

/**
 * The operator's choice for a reply whose outcome is unknown: Meta may hold it once, or not at all.
 * Both are conditional on the server: a status or another operator that came first wins.
 */
function decision(r: OutboundDetail, rerender: () => Promise<void>): HTMLElement {
  const reason: HTMLInputElement = h('input', { name: 'reason', required: true, maxlength: 200, placeholder: 'why (kept in the journey)', autocomplete: 'off' });
  const message = h('p', { class: 'muted', role: 'status' });
  const act = (path: 'resend' | 'mark-sent') => async (ev: Event) => {
    ev.preventDefault();
    if (!reason.value.trim()) return void (message.textContent = 'Say why: the reason is kept in the journey.');
    try {
      await api.post(`outbound/${encodeURIComponent(r.id)}/${path}`, { reason: reason.value.trim() });
      await rerender();
    } catch (error) {
      message.textContent = error instanceof ApiError ? error.message : String(error);
    }
  };
  return h(
    'section',
    { class: 'card', 'aria-label': 'Decide this reply' },
    h('h2', {}, 'Outcome unknown'),
    h('p', {}, 'Meta may have this reply (its send and its resend both ended without an answer), and no status came. Resend it once more, or mark it as sent if the person got it.'),
    h(
      'form',
      { class: 'filters' },
      h('label', { class: 'grow' }, 'Reason', reason),
      h('button', { type: 'submit', name: 'resend', onclick: act('resend') }, 'Resend once'),
      h('button', { type: 'button', name: 'mark-sent', onclick: act('mark-sent') }, 'Mark as sent'),
    ),
    message,
  );
}

/** The reply's place on queued → sending → sent → delivered → read (failed ends it): a small stepper. */
function stepper(status: string): HTMLElement {
  const reached = status === 'failed' ? -1 : LADDER.indexOf(status);
  return h(
    'ol',
    { class: `stepper${status === 'failed' ? ' stepper-failed' : ''}`, 'aria-label': `Status: ${status}` },
    LADDER.map((s, i) => h('li', { class: i <= reached ? 'done' : '', title: s }, h('span', { class: 'visually-hidden' }, s))),
  );
}

function row(r: OutboundSummary, fresh = false): HTMLTableRowElement {
  return h(
    'tr',
    { 'data-id': r.id, class: fresh ? 'fresh' : '' },
    h('td', {}, h('time', { datetime: r.createdAt, title: time(r.createdAt) }, ago(r.createdAt))),
    h('td', {}, r.lineId),
    h('td', {}, h('a', { href: `#/outbound/${encodeURIComponent(r.id)}` }, `${r.type} · ${r.source}`)),
    h('td', {}, r.to),
    h('td', {}, badge(r.status), stepper(r.status)),
    h('td', { class: 'muted' }, r.error ? `${r.error.code ?? ''} ${r.error.title}`.trim() : ''),
  );
}

async function renderDetail(main: HTMLElement, id: string): Promise<void> {
  const r = await api.get<OutboundDetail>(`outbound/${encodeURIComponent(id)}`);
  clear(main);
  main.append(
    h('p', {}, h('a', { href: '#/outbound', class: 'back' }, '← Outbound')),
    h('header', { class: 'page-head' }, h('h1', {}, `Reply · ${r.type} `, badge(r.status)), h('p', { class: 'sub mono' }, r.id)),
    h(
      'div',
      { class: 'detail-grid' },
      ...(r.awaitsOperator ? [decision(r, () => renderDetail(main, id))] : []),
      h('section', { class: 'card' }, h('h2', {}, 'Status timeline'), stepper(r.status), timeline(r.journey.map((s) => ({ ...s, detail: s.detail ? { info: s.detail } : undefined })), OUTBOUND_LABELS)),
      h(
        'section',
        { class: 'card' },
        h('h2', {}, 'Reply'),
        h(
          'dl',
          { class: 'facts' },
          [
            ['Line', r.lineId],
            ['To', r.to],
            ['Source', r.source],
            ['Attempts', String(r.attempts)],
            ['Created', time(r.createdAt)],
            ['wamid', r.wamid ?? '—'],
            ['Error', r.error ? `${r.error.code ?? ''} ${r.error.title}`.trim() : '—'],
          ].map(([k, v]) => h('div', {}, h('dt', {}, k!), h('dd', {}, v!))),
        ),
      ),
    ),
  );
}

export async function renderOutbound(main: HTMLElement, id: string | undefined, params: OutboundParams, navigate: (p: OutboundParams) => void, onTail: (l: ((key: string) => void) | undefined) => void): Promise<void> {
  if (id) return renderDetail(main, id);
  let first: Page<OutboundSummary>;
  try {
    first = await api.get<Page<OutboundSummary>>(`outbound${query({ ...params, limit: 50 })}`);
  } catch (error) {
    clear(main);
    main.append(h('header', { class: 'page-head' }, h('h1', {}, 'Outbound')));
    if (error instanceof ApiError && error.status === 404) {
      main.append(h('section', { class: 'card' }, empty('This gateway sends no replies.', 'Set SQS_OUTBOUND_QUEUE_URL (the embedded default always has one) to journal replies here.')));
      return;
    }
    throw error;
  }
  const lines = await api.get<Page<LineSummary>>('lines?limit=200');
  clear(main);
  main.append(h('header', { class: 'page-head' }, h('h1', {}, 'Outbound'), h('p', { class: 'sub' }, 'Replies sent to WhatsApp users, with their status timelines. Recipients are masked; message bodies are not kept here.')));
  const field = (name: keyof OutboundParams) => (form.querySelector(`[name=${name}]`) as HTMLInputElement | HTMLSelectElement).value || undefined;
  const form: HTMLFormElement = h(
    'form',
    {
      class: 'filters',
      role: 'search',
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        navigate({ lineId: field('lineId'), status: field('status'), to: field('to') });
      },
    },
    h('label', {}, 'Line', h('select', { name: 'lineId' }, [['', 'All lines'], ...lines.items.map((l) => [l.lineId, l.lineId])].map(([v, t]) => h('option', { value: v!, selected: (params.lineId ?? '') === v }, t!)))),
    h(
      'label',
      {},
      'Status',
      h('select', { name: 'status' }, ['', 'queued', 'sending', 'uncertain', 'sent', 'delivered', 'read', 'failed'].map((v) => h('option', { value: v, selected: (params.status ?? '') === v }, v || 'Any status'))),
    ),
    h('label', { class: 'grow' }, 'Recipient', h('input', { name: 'to', type: 'search', placeholder: 'the whole phone number', autocomplete: 'off' })),
    h('button', { type: 'submit' }, 'Apply'),
  );
  (form.querySelector('input[name=to]') as HTMLInputElement).value = params.to ?? '';
  const body = h('tbody', {}, first.items.map((r) => row(r)));
  main.append(
    form,
    h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, ['Created', 'Line', 'Reply', 'To', 'Status', 'Error'].map((t) => h('th', { scope: 'col' }, t)))), body)),
  );
  if (first.items.length === 0) {
    main.append(
      empty(
        params.to || params.status || params.lineId ? 'No replies match these filters.' : 'No replies yet.',
        'Replies appear here when a Flow answers with replies or the send API (POST /v1/lines/:lineId/messages) accepts one.',
      ),
    );
  }
  onTail(async (key) => {
    if (!key.startsWith('ob_')) return;
    const r = await api.get<OutboundSummary>(`outbound/${encodeURIComponent(key)}`).catch(() => undefined);
    if (!r || (params.lineId && r.lineId !== params.lineId) || (params.status && r.status !== params.status) || params.to) return;
    const existing = body.querySelector(`tr[data-id="${CSS.escape(key)}"]`);
    if (existing) existing.replaceWith(row(r, true));
    else body.prepend(row(r, true));
  });
}
