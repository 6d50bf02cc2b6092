import { Counter, type Registry } from 'prom-client';
import { RetryableError } from '../errors';
import type { WhatsAppEvent } from '../meta/event';
import { conversationKeyOf } from '../meta/conversation';
import { observationOf, DEFAULT_PAUSE_MINUTES, type ContactObservation } from './contact-facts';
import { activePause, applyFact, learnIdentity, metaTimeMs, sameState, type ContactFact, type ContactIdentity, type ContactState } from './contact-state';
import { newContactId, type ContactStore, type VersionedContactState } from './contact-store';

/** What a flow body and a conversations message carry: may the AI speak, and to whom. */
export interface ConversationView {
  contactId: string;
  windowOpenUntil: string | null;
  paused: { until: string | null; by: ContactState['pausedBy'] & string } | null;
}

export interface ContactStatesOptions {
  store: ContactStore;
  registry: Registry;
  /** CONTACT_STATE_CACHE_MS: how long a state read or written here is trusted without reading again. */
  cacheMs: number;
  clock?: () => number;
}

const MAX_ATTEMPTS = 4;

/**
 * The worker's and the contact API's way to the contact-state store: a read-through cache per
 * process, and writes only when a fact changes the state. The rules are monotone in Meta's
 * timestamps, so a redelivered event finds nothing to change and writes nothing; a write is a
 * PutItem conditioned on the version read, retried on a fresh read when another worker wrote first.
 */
export class ContactStates {
  private readonly cache = new Map<string, { entry: VersionedContactState; at: number }>();
  private readonly writes: Counter<'outcome'>;

  constructor(private readonly options: ContactStatesOptions) {
    this.writes = new Counter({
      name: 'wa_ingress_contact_state_updates_total',
      help: 'Contact-state updates by outcome: written, unchanged (nothing new: no write), contended (another worker wrote first; read again)',
      labelNames: ['outcome'],
      registers: [options.registry],
    });
  }

  private now(): number {
    return (this.options.clock ?? Date.now)();
  }

  /**
   * Applies what `event` says about its conversation and returns what Bird must know, or undefined for
   * events about no conversation. `payload`: the other events of the same webhook payload; the
   * person's later messages in it move the window in this same write (one write per payload and person).
   */
  async observe(lineId: string, event: WhatsAppEvent, options: { pauseMinutes?: number; payload?: readonly WhatsAppEvent[] } = {}): Promise<ConversationView | undefined> {
    const observation = observationOf(event, options.pauseMinutes ?? DEFAULT_PAUSE_MINUTES);
    if (!observation) return undefined;
    const facts = [...observation.facts, ...this.laterMessages(event, options.payload ?? [])];
    const state = await this.update(lineId, observation.identity, facts, true);
    return state && this.view(state);
  }

  /** The API's read; undefined when the contact is unknown. */
  async get(lineId: string, contact: string): Promise<ContactState | undefined> {
    return (await this.options.store.find(lineId, anyId(contact)))?.state;
  }

  /** `PUT …/pause` and `DELETE …/pause`; undefined when the contact is unknown. */
  async setPause(lineId: string, contact: string, fact: Extract<ContactFact, { type: 'pause' | 'resume' }>): Promise<ContactState | undefined> {
    return this.update(lineId, anyId(contact), [fact], false, true);
  }

  view(state: ContactState): ConversationView {
    return {
      contactId: state.contactId,
      windowOpenUntil: state.windowOpenUntil === undefined ? null : new Date(state.windowOpenUntil).toISOString(),
      paused: activePause(state, this.now()),
    };
  }

  private async update(lineId: string, identity: ContactIdentity, facts: ContactFact[], create: boolean, fresh = false): Promise<ContactState | undefined> {
    const cacheKey = this.cacheKey(lineId, identity);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const read = attempt === 0 && !fresh ? this.cached(cacheKey) ?? (await this.options.store.find(lineId, identity)) : await this.options.store.find(lineId, identity);
      if (!read && !create) return undefined;
      const current = read ?? { state: { lineId, contactId: newContactId() }, version: 0 };
      // Only an event teaches ids; an API call names the contact by any id and teaches nothing.
      const next = facts.reduce(applyFact, create ? learnIdentity(current.state, identity) : current.state);
      if (read && sameState(current.state, next)) {
        this.writes.inc({ outcome: 'unchanged' });
        this.remember(cacheKey, current);
        return current.state;
      }
      if (await this.options.store.write(next, current.version)) {
        this.writes.inc({ outcome: 'written' });
        this.remember(cacheKey, { state: next, version: current.version + 1 });
        return next;
      }
      this.writes.inc({ outcome: 'contended' });
      this.cache.delete(cacheKey);
    }
    throw new RetryableError('contact_state_contended', 'The contact state kept changing under this worker; the event goes back to the queue');
  }

  /** The person's later messages in the same payload: their window moves in this write, so theirs find nothing to write. */
  private laterMessages(event: WhatsAppEvent, payload: readonly WhatsAppEvent[]): ContactFact[] {
    if (event.kind !== 'message') return [];
    const key = conversationKeyOf(event);
    const times = payload
      .filter((other) => other.kind === 'message' && other !== event && conversationKeyOf(other) === key)
      .map((other) => metaTimeMs(other.timestamp))
      .filter((at): at is number => at !== undefined);
    return times.length > 0 ? [{ type: 'inbound', at: Math.max(...times) }] : [];
  }

  private cacheKey(lineId: string, identity: ContactIdentity): string {
    return `${lineId}#${identity.groupId ?? identity.userId ?? identity.waId ?? ''}`;
  }

  private cached(key: string): VersionedContactState | undefined {
    const hit = this.cache.get(key);
    if (!hit || this.now() - hit.at > this.options.cacheMs) return undefined;
    return hit.entry;
  }

  private remember(key: string, entry: VersionedContactState): void {
    if (this.options.cacheMs <= 0) return;
    if (this.cache.size > 50_000) this.cache.clear();
    this.cache.set(key, { entry, at: this.now() });
  }
}

/** The API's `:contact` is either id (or a group id): whichever the record holds. */
function anyId(contact: string): ContactIdentity {
  return { waId: contact.replace(/^\+/, ''), userId: contact, groupId: contact };
}

export type { ContactObservation };
