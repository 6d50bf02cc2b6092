import { api, ApiError, query } from './api.js';
import type { ErasureAccepted, ErasureView, LineSummary, Page } from './contract.js';
import { clear, h, time } from './dom.js';
import { confirmDialog, toast } from './shell.js';

const STEP_LABELS: Record<string, string> = {
  media: 'Media in S3',
  journal: 'Journal events and facts',
  outbound: 'Replies and their bodies',
  turns: 'Pending turn',
};

/**
 * Erase a contact on a line (GDPR Art. 17): a form (the number is typed, never shown back), a
 * confirmation, then the erasure's progress until done, with what it removed per store.
 */
export async function renderErase(main: HTMLElement, shownId: string | undefined, shownLine: string | undefined, show: (id: string, lineId: string) => void): Promise<void> {
  const { items: lines } = await api.get<Page<LineSummary>>(`lines${query({ limit: 200 })}`);
  clear(main);
  main.append(h('header', { class: 'page-head' }, h('h1', {}, 'Erase a contact'), h('p', { class: 'sub' }, 'Removes the person’s media, journal, replies and pending turn on one line. The audit record keeps only a digest and the last four digits.')));
  const line = h('select', { id: 'erase-line', name: 'lineId', required: true }, lines.map((l) => h('option', { value: l.lineId }, l.lineId)));
  const contact = h('input', { id: 'erase-contact', name: 'contact', type: 'text', required: true, autocomplete: 'off', placeholder: 'wa_id or BSUID', minlength: '5', maxlength: '63' });
  const form = h(
    'form',
    { class: 'erase-form' },
    h('label', { for: 'erase-line' }, 'Line'),
    line,
    h('label', { for: 'erase-contact' }, 'Contact'),
    contact,
    h('button', { type: 'submit', class: 'danger' }, 'Erase…'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void (async () => {
      const who = contact.value.trim();
      const ok = await confirmDialog('Erase this contact?', `Everything of ${who.slice(0, 3)}… on ${line.value} is removed for good. This cannot be undone.`, 'Erase', true);
      if (!ok) return;
      try {
        const accepted = await api.post<ErasureAccepted>('erasures', { lineId: line.value, contact: who });
        contact.value = '';
        toast(`Erasure ${accepted.id} queued.`);
        show(accepted.id, line.value);
      } catch (error) {
        toast(error instanceof ApiError ? error.message : 'The erasure could not be recorded.');
      }
    })();
  });
  main.append(form);
  if (shownId && shownLine) main.append(await progress(shownId, shownLine));
}

async function progress(id: string, lineId: string): Promise<HTMLElement> {
  const box = h('section', { class: 'erasure', 'aria-live': 'polite' });
  const draw = (view: ErasureView) => {
    clear(box);
    box.append(
      h('h2', {}, `Erasure ${view.id}`),
      h('p', { class: 'erasure-status' }, view.status === 'done' ? `Done ${time(view.completedAt)}` : view.status === 'running' ? 'Running…' : 'Queued…', ` · ${view.lineId} · ${view.contact}`),
      h('ul', { class: 'erasure-steps' }, view.steps.map((s) => h('li', { 'data-step': s.step }, `${STEP_LABELS[s.step] ?? s.step}: ${s.done ? `${s.removed} removed` : s.removed > 0 ? `${s.removed} so far` : 'waiting'}`))),
    );
  };
  const poll = async () => {
    if (!box.isConnected && box.childElementCount > 0) return;
    const view = await api.get<ErasureView>(`erasures/${encodeURIComponent(id)}${query({ lineId })}`);
    draw(view);
    if (view.status !== 'done') setTimeout(() => void poll().catch(() => undefined), 1000);
  };
  await poll();
  return box;
}
