import { h } from './dom.js';

/** A modal confirmation (native <dialog>: focus trapped, Escape cancels). Resolves true on confirm. */
export function confirmDialog(title: string, text: string, confirmLabel: string, danger = false): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h(
      'dialog',
      { class: 'confirm', 'aria-labelledby': 'confirm-title' },
      h(
        'form',
        { method: 'dialog' },
        h('h2', { id: 'confirm-title' }, title),
        h('p', {}, text),
        h(
          'div',
          { class: 'actions' },
          h('button', { value: 'cancel', class: 'secondary', type: 'submit' }, 'Cancel'),
          h('button', { value: 'ok', class: danger ? 'danger' : 'primary', type: 'submit' }, confirmLabel),
        ),
      ),
    ) as HTMLDialogElement;
    document.body.append(dialog);
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      dialog.remove();
    });
    dialog.showModal();
    (dialog.querySelector('button[value=ok]') as HTMLButtonElement).focus();
  });
}

export function toast(text: string): void {
  const box = document.getElementById('toasts');
  if (!box) return;
  const item = h('div', { class: 'toast', role: 'status' }, text);
  box.append(item);
  setTimeout(() => item.remove(), 4000);
}
