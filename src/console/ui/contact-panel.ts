import { api, ApiError } from './api.js';
import type { ContactPanelView } from './contract.js';
import { h, time } from './dom.js';
import { toast } from './shell.js';

const PAUSED_BY: Record<string, string> = { api: 'the contact API or the console', business_app: 'the owner, from the WhatsApp Business app', meta_handover: 'Meta (another app has the thread)' };

/** The event detail's contact card: the customer service window, the pause, and pause / resume. */
export async function contactPanel(handle: string): Promise<HTMLElement> {
  const card = h('section', { class: 'card contact-panel', 'aria-labelledby': 'contact-title' });
  const path = `events/${encodeURIComponent(handle)}/contact`;
  const render = (view: ContactPanelView | undefined) => {
    card.replaceChildren(h('h2', { id: 'contact-title' }, 'Conversation'));
    if (!view) {
      card.append(h('p', { class: 'muted' }, 'No conversation state for this contact (yet).'));
      return;
    }
    const open = view.windowOpenUntil !== null && Date.parse(view.windowOpenUntil) > Date.now();
    const windowText = view.windowOpenUntil === null ? 'Unknown (no message from the person yet)' : `${open ? 'Open until' : 'Closed since'} ${time(view.windowOpenUntil)}`;
    const pauseText = view.paused ? `Paused by ${PAUSED_BY[view.paused.by] ?? view.paused.by}${view.paused.until ? ` until ${time(view.paused.until)}` : ' until control comes back'}` : 'Not paused: the AI answers';
    card.append(
      h(
        'dl',
        { class: 'facts' },
        h('div', {}, h('dt', {}, 'Window'), h('dd', { 'data-field': 'window' }, windowText)),
        h('div', {}, h('dt', {}, 'AI'), h('dd', { 'data-field': 'pause' }, pauseText)),
      ),
    );
    const minutes = h('input', { type: 'number', min: '1', max: '10080', value: '60', 'aria-label': 'Pause minutes', class: 'narrow' });
    const act = (label: string, run: () => Promise<ContactPanelView>, done: string) =>
      h('button', { type: 'button', class: 'secondary', onclick: async () => render(await run().then((v) => (toast(done), v))) }, label);
    card.append(
      h(
        'div',
        { class: 'actions' },
        minutes,
        act('Pause the AI', () => api.post<ContactPanelView>(`${path}/pause`, { minutes: Number(minutes.value) }), 'Paused: the AI’s replies are not sent.'),
        view.paused ? act('Resume', () => api.post<ContactPanelView>(`${path}/resume`), 'Resumed: the AI answers again.') : null,
      ),
    );
  };
  try {
    render(await api.get<ContactPanelView>(path));
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
    render(undefined);
  }
  return card;
}
