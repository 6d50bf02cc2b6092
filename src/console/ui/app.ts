import { api, ApiError } from './api.js';
import { renderDetail } from './detail.js';
import { renderDlq, type DlqParams } from './dlq.js';
import { renderErase } from './erase.js';
import { clear, empty, h } from './dom.js';
import { renderEvents, type EventsParams } from './events.js';
import { renderLogin } from './login.js';
import { renderOutbound, type OutboundParams } from './outbound.js';
import { renderOverview } from './overview.js';

/**
 * The console page: a hash router over six views, one live stream (SSE) for the session, and the
 * login screen when the API answers 401. Written without a framework: the views are small, and the
 * page ships as a few static files the gateway serves.
 */
const root = document.getElementById('app')!;
let stream: EventSource | undefined;
let tailListener: ((handle: string) => void) | undefined;

const NAV: [string, string][] = [
  ['#/', 'Overview'],
  ['#/events', 'Events'],
  ['#/dlq', 'DLQ'],
  ['#/outbound', 'Outbound'],
  ['#/erase', 'Erase'],
];

function parseHash(): { path: string; params: URLSearchParams } {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, search] = raw.split('?');
  return { path: path || '/', params: new URLSearchParams(search ?? '') };
}

function toHash(path: string, params: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return `#${path}${s ? `?${s}` : ''}`;
}

function openStream(): void {
  if (stream) return;
  stream = new EventSource('api/stream');
  stream.addEventListener('journal', (ev) => {
    const data = JSON.parse((ev as MessageEvent<string>).data) as { handle: string };
    const indicator = document.getElementById('pulse');
    indicator?.classList.remove('beat');
    void indicator?.offsetWidth;
    indicator?.classList.add('beat');
    tailListener?.(data.handle);
  });
}

function shell(): HTMLElement {
  clear(root);
  const current = parseHash().path;
  const main = h('main', { id: 'main', tabindex: '-1' });
  root.append(
    h('a', { href: '#main', class: 'skip', onclick: (ev: Event) => (ev.preventDefault(), main.focus()) }, 'Skip to content'),
    h(
      'header',
      { class: 'topbar' },
      h('a', { class: 'brand', href: '#/' }, h('span', { class: 'logo', 'aria-hidden': 'true' }, '◆'), ' wa-ingress'),
      h(
        'nav',
        { 'aria-label': 'Console' },
        h(
          'ul',
          {},
          NAV.map(([href, label]) => {
            const active = href === '#/' ? current === '/' : current.startsWith(href.slice(1));
            return h('li', {}, h('a', { href, 'aria-current': active ? 'page' : undefined }, label));
          }),
        ),
      ),
      h('span', { id: 'pulse', class: 'pulse', title: 'Live stream', 'aria-hidden': 'true' }),
      h(
        'button',
        {
          type: 'button',
          class: 'link',
          onclick: async () => {
            await api.logout().catch(() => undefined);
            stream?.close();
            stream = undefined;
            renderLogin(root, () => void route());
          },
        },
        'Log out',
      ),
    ),
    main,
  );
  return main;
}

async function route(): Promise<void> {
  tailListener = undefined;
  const { path, params } = parseHash();
  const main = shell();
  main.append(h('p', { class: 'loading' }, 'Loading…'));
  openStream();
  try {
    if (path === '/' || path === '') await renderOverview(main);
    else if (path === '/events') {
      const p: EventsParams = { lineId: params.get('lineId') ?? undefined, kind: params.get('kind') ?? undefined, outcome: params.get('outcome') ?? undefined, search: params.get('search') ?? undefined };
      await renderEvents(main, p, (next) => (location.hash = toHash('/events', { ...next })), (listener) => (tailListener = listener));
    } else if (path.startsWith('/events/')) await renderDetail(main, decodeURIComponent(path.slice('/events/'.length)), () => void route());
    else if (path === '/dlq') {
      const p: DlqParams = { queue: params.get('queue') === 'outbound' ? 'outbound' : 'inbound', reason: params.get('reason') ?? undefined };
      await renderDlq(main, p, (next) => {
        const hash = toHash('/dlq', { queue: next.queue, reason: next.reason });
        if (location.hash === hash) void route();
        else location.hash = hash;
      });
    } else if (path === '/outbound' || path.startsWith('/outbound/')) {
      const p: OutboundParams = { lineId: params.get('lineId') ?? undefined, status: params.get('status') ?? undefined, to: params.get('to') ?? undefined };
      const id = path.startsWith('/outbound/') ? decodeURIComponent(path.slice('/outbound/'.length)) : undefined;
      await renderOutbound(main, id, p, (next) => (location.hash = toHash('/outbound', { ...next })), (listener) => (tailListener = listener));
    }
    else if (path === '/erase') {
      await renderErase(main, params.get('id') ?? undefined, params.get('lineId') ?? undefined, (id, lineId) => (location.hash = toHash('/erase', { id, lineId })));
    } else {
      clear(main);
      main.append(empty('No such page.', h('a', { href: '#/' }, 'Back to the overview')));
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      stream?.close();
      stream = undefined;
      renderLogin(root, () => void route());
      return;
    }
    clear(main);
    main.append(empty('Something went wrong.', (error as Error).message));
  }
}

window.addEventListener('hashchange', () => void route());
void (async () => {
  if (await api.session()) await route();
  else renderLogin(root, () => void route());
})();
