/** DOM building without innerHTML: every value becomes text, so nothing from the API is ever parsed as markup. */
type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | EventListener | undefined | null>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value as EventListener);
    // Through the CSSOM: the page's CSP refuses style attributes in markup.
    else if (name === 'style') el.style.cssText = String(value);
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function svg(tag: string, attrs: Record<string, string | number> = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  append(el, children);
  return el;
}

function append(el: Element, children: Child[]): void {
  for (const child of children.flat(Infinity as 1) as Child[]) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

export function time(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

export const OUTCOME_LABEL: Record<string, string> = {
  delivered: 'Delivered',
  not_forwarded: 'Not forwarded',
  parked: 'Parked',
  in_progress: 'In progress',
  retrying: 'Retrying',
  duplicate: 'Duplicate',
  queued: 'Queued',
  sending: 'Sending',
  sent: 'Sent',
  read: 'Read',
  failed: 'Failed',
  uncertain: 'Uncertain',
};

export function badge(outcome: string): HTMLElement {
  return h('span', { class: `badge badge-${outcome}` }, OUTCOME_LABEL[outcome] ?? outcome);
}

/** An empty state: what is missing, and what to do next. */
export function empty(title: string, next: Child): HTMLElement {
  return h('div', { class: 'empty', role: 'status' }, h('p', { class: 'empty-title' }, title), h('p', { class: 'empty-next' }, next));
}

export function code(text: string): HTMLElement {
  return h('code', {}, text);
}
