import { api, ApiError } from './api.js';
import { clear, code, h } from './dom.js';

export function renderLogin(root: HTMLElement, done: () => void): void {
  clear(root);
  const error = h('p', { class: 'error', role: 'alert' });
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'current-password', required: true, spellcheck: 'false' }) as HTMLInputElement;
  const form = h(
    'form',
    {
      class: 'card login',
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        error.textContent = '';
        try {
          await api.login(input.value);
          input.value = '';
          done();
        } catch (e) {
          error.textContent = e instanceof ApiError && e.status === 401 ? 'That is not the console token.' : `Could not log in: ${(e as Error).message}`;
          input.select();
        }
      },
    },
    h('h1', {}, h('span', { class: 'logo', 'aria-hidden': 'true' }, '◆'), ' wa-ingress console'),
    h('p', { class: 'sub' }, 'Where is my message? Every event, its journey, the DLQ.'),
    h('label', { for: 'token' }, 'Console token'),
    input,
    h('p', { class: 'hint' }, 'The embedded default prints it at start (', code('console token:'), '); a deployment sets ', code('CONSOLE_TOKEN'), '.'),
    error,
    h('button', { type: 'submit', class: 'primary' }, 'Log in'),
  );
  root.append(h('main', { class: 'login-wrap', id: 'main' }, form));
  input.focus();
}
