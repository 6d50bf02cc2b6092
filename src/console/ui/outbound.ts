import { api, ApiError } from './api.js';
import { clear, empty, h } from './dom.js';

export async function renderOutbound(main: HTMLElement, _id?: string): Promise<void> {
  clear(main);
  main.append(h('header', { class: 'page-head' }, h('h1', {}, 'Outbound'), h('p', { class: 'sub' }, 'Replies sent to WhatsApp users, with their status timelines.')));
  try {
    await api.get('outbound?limit=1');
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      main.append(h('section', { class: 'card' }, empty('No outbound journal on this gateway.', 'This version records inbound events only.')));
      return;
    }
    throw error;
  }
}
