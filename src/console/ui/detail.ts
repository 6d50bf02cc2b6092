import { api } from './api.js';
import type { DlqSummary, EventDetailView, Page } from './contract.js';
import { ago, badge, clear, duration, h, time } from './dom.js';
import { confirmDialog, toast } from './shell.js';
import { contactPanel } from './contact-panel.js';

export const INBOUND_LABELS: Record<string, string> = {
  received: 'Received from Meta',
  claimed: 'Claimed by a worker',
  media_stored: 'Media stored in S3',
  delivered: 'Delivered to Bird',
  completed: 'Completed',
  duplicate: 'Duplicate skipped',
  retried: 'Will be retried',
  parked: 'Parked in the DLQ',
  redriven: 'Redriven from the DLQ',
};

export const OUTBOUND_LABELS: Record<string, string> = {
  queued: 'Queued',
  sending: 'Sending to Meta',
  retry: 'Will be retried',
  uncertain: 'Outcome unknown',
  operator: 'Operator decision',
  sent: 'Accepted by Meta',
  delivered: 'Delivered to the phone',
  read: 'Read by the user',
  failed: 'Failed',
  suppressed: 'Not sent: the contact is paused',
};

/** The journey as a vertical timeline, each step with the time since the first. */
export function timeline(steps: { at: string; step: string; detail?: Record<string, unknown> }[], labels = INBOUND_LABELS): HTMLElement {
  const start = steps.length > 0 ? Date.parse(steps[0]!.at) : 0;
  return h(
    'ol',
    { class: 'timeline' },
    steps.map((s) =>
      h(
        'li',
        { class: `step step-${s.step}` },
        h('span', { class: 'step-dot', 'aria-hidden': 'true' }),
        h('div', { class: 'step-body' }, h('strong', {}, labels[s.step] ?? s.step), h('span', { class: 'muted' }, ` +${duration(Date.parse(s.at) - start)} · `, h('time', { datetime: s.at }, time(s.at)))),
        s.detail && Object.keys(s.detail).length > 0
          ? h('dl', { class: 'step-detail' }, Object.entries(s.detail).map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, String(v)))))
          : null,
      ),
    ),
  );
}

export async function renderDetail(main: HTMLElement, handle: string, refresh: () => void): Promise<void> {
  const e = await api.get<EventDetailView>(`events/${encodeURIComponent(handle)}`);
  clear(main);
  main.append(
    h('p', {}, h('a', { href: '#/events', class: 'back' }, '← Events')),
    h('header', { class: 'page-head' }, h('h1', {}, `${e.kind} · ${e.type} `, badge(e.outcome)), h('p', { class: 'sub mono' }, e.handle)),
  );
  const facts = h(
    'dl',
    { class: 'facts' },
    [
      ['Line', e.lineId],
      ['Contact', e.contact ?? '—'],
      ['Received', `${time(e.receivedAt)} (${ago(e.receivedAt)})`],
      ['Attempts', String(e.attempts ?? '—')],
      ['Duplicates', String(e.duplicates)],
      ['Reason', e.reason ?? '—'],
    ].map(([k, v]) => h('div', {}, h('dt', {}, k!), h('dd', {}, v!))),
  );
  const actions = h('div', { class: 'actions' });
  if (e.outcome === 'parked') {
    const dlq = await api.get<Page<DlqSummary>>('dlq?queue=inbound&limit=200');
    const parked = dlq.items.find((d) => d.handle === e.handle);
    if (parked) {
      actions.append(
        h(
          'button',
          {
            type: 'button',
            class: 'primary',
            onclick: async () => {
              if (!(await confirmDialog('Redrive this event?', `It goes back to the main queue and is delivered to Bird again (reason it was parked: ${parked.reason}).`, 'Redrive'))) return;
              const r = await api.post<{ redriven: number }>(`dlq/${encodeURIComponent(parked.id)}/redrive?queue=inbound`);
              toast(r.redriven > 0 ? 'Redriven: watch the journey.' : 'Nothing redriven: it may have left the DLQ already.');
              setTimeout(refresh, 1500);
            },
          },
          'Redrive',
        ),
      );
    } else actions.append(h('p', { class: 'muted' }, 'Parked, but its DLQ message is gone (redriven or purged).'));
  }
  if (e.media) actions.append(h('a', { class: 'button secondary', href: `api/${e.media.href}`, download: '' }, `Download media (${e.media.type ?? 'file'}, ${e.media.size ?? '?'} bytes)`));
  main.append(
    h(
      'div',
      { class: 'detail-grid' },
      h('section', { class: 'card' }, h('h2', {}, 'Journey'), timeline(e.journey), actions),
      h('section', { class: 'card' }, h('h2', {}, 'Event'), facts, h('h3', {}, 'Stored event'), h('pre', { class: 'json', tabindex: '0' }, JSON.stringify(e.event ?? null, null, 2))),
    ),
  );
  if (e.contact) main.append(await contactPanel(e.handle));
}
