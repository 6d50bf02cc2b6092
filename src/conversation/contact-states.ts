import { Counter, type Registry } from 'prom-client';
import { RetryableError } from '../errors';
import type { WhatsAppEvent } from '../meta/event';
import { conversationKeyOf } from '../meta/conversation';
import { movesIdentity, observationOf, DEFAULT_PAUSE_MINUTES, type ContactObservation } from './contact-facts';
import { activePause, applyFact, learnIdentity, metaTimeMs, sameState, type ContactFact, type ContactIdentity, type ContactState } from './contact-state';
import { contactIdFor, likelyKinds, nextContactId, type ContactStore, type FindOptions, type VersionedContactState } from './contact-store';

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
/** An id change for an unknown contact is retried until this receive, IDENTITY_WAIT_MS apart. */
const IDENTITY_WAIT_RECEIVES = 3;
const IDENTITY_WAIT_MS = 1000;

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
  async observe(
    lineId: string,
    event: WhatsAppEvent,
    options: { pauseMinutes?: number; payload?: readonly WhatsAppEvent[]; receiveCount?: number } = {},
  ): Promise<ConversationView | undefined> {
    const observation = observationOf(event, options.pauseMinutes ?? DEFAULT_PAUSE_MINUTES);
    if (!observation) return undefined;
    const facts = [...observation.facts, ...this.laterMessages(event, options.payload ?? [])];
    // A number change names only the old number, so it travels in the number's FIFO group, not the
    // BSUID's: the message that taught us that number may still be on its way. Wait for it a little
    // (the payload goes back to the queue); after that, a move of a number nobody knows moves nothing.
    const moveOnly = movesIdentity(observation);
    const state = await this.update(lineId, observation, facts, !moveOnly);
    if (!state && moveOnly && (options.receiveCount ?? IDENTITY_WAIT_RECEIVES) < IDENTITY_WAIT_RECEIVES) {
      throw new RetryableError('contact_state_identity_unknown', 'An id change for a contact not known yet; waiting for the message that names them', { retryAfterMs: IDENTITY_WAIT_MS });
    }
    return state && this.view(state);
  }

  /** The API's read; undefined when the contact is unknown. */
  async get(lineId: string, contact: string): Promise<ContactState | undefined> {
    return (await this.options.store.find(lineId, anyId(contact), { order: likelyKinds(contact) }))?.state;
  }

  /** The console's read: the contact an event names, by the digest its journal record keeps. */
  async getByDigest(lineId: string, digest: string): Promise<ContactState | undefined> {
    return (await this.options.store.findByDigest(lineId, digest))?.state;
  }

  /** `PUT …/pause` and `DELETE …/pause`; undefined when the contact is unknown. */
  async setPause(lineId: string, contact: string, fact: Extract<ContactFact, { type: 'pause' | 'resume' }>): Promise<ContactState | undefined> {
    // An API call names the contact by any id and teaches none.
    return this.update(lineId, { identity: anyId(contact), facts: [] }, [fact], false, true, false, { order: likelyKinds(contact) });
  }

  view(state: ContactState): ConversationView {
    return {
      contactId: state.contactId,
      windowOpenUntil: state.windowOpenUntil === undefined ? null : new Date(state.windowOpenUntil).toISOString(),
      paused: activePause(state, this.now()),
    };
  }

  /** `lookup`: how to read when the cache has no fresh copy (default: see `lookupFor`). */
  private async update(
    lineId: string,
    observation: ContactObservation,
    facts: ContactFact[],
    create: boolean,
    fresh = false,
    learn = true,
    lookup?: FindOptions,
  ): Promise<ContactState | undefined> {
    const { identity } = observation;
    const cacheKey = this.cacheKey(lineId, identity);
    let newContactId = contactIdFor(lineId, identity);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const read = (attempt === 0 && !fresh ? this.cached(cacheKey) : undefined) ?? (await this.find(lineId, observation, lookup ?? this.lookupFor(cacheKey)));
      if (!read && !create) return undefined;
      const current = read ?? { state: { lineId, contactId: newContactId }, version: 0 };
      const next = facts.reduce(applyFact, learn ? learnIdentity(current.state, identity, observation.at) : current.state);
      if (read && sameState(current.state, next)) {
        this.writes.inc({ outcome: 'unchanged' });
        this.remember(cacheKey, identity, current);
        return current.state;
      }
      if (await this.options.store.write(next, current.version)) {
        this.writes.inc({ outcome: 'written' });
        this.remember(cacheKey, identity, { state: next, version: current.version + 1 });
        return next;
      }
      this.writes.inc({ outcome: 'contended' });
      this.cache.delete(cacheKey);
      if (current.version === 0) {
        // The key was taken: by another worker meeting this person at the same time (read it directly
        // next: the index may not show it yet), or by someone who has since moved off this id (a
        // recycled number: the read rejects them, and the person gets the next key in the chain).
        lookup = { contactId: newContactId };
        newContactId = nextContactId(lineId, newContactId);
      }
    }
    throw new RetryableError('contact_state_contended', 'The contact state kept changing under this worker; the event goes back to the queue');
  }

  private async find(lineId: string, observation: ContactObservation, lookup: FindOptions): Promise<VersionedContactState | undefined> {
    const found = await this.options.store.find(lineId, observation.identity, lookup);
    // A moved record's key derives from its first id, never the new one: only the index knows it.
    return found ?? (observation.movedTo && (await this.options.store.find(lineId, observation.movedTo, { direct: false })));
  }

  /**
   * The worker's read on a cache miss. A person this process met before: their item, read directly by
   * the contactId it knew (one GetItem). A person it never met is most often new (the derived key's
   * GetItem would miss and the index Query still be needed, since they may be stored under another
   * first id): straight to the index, one Query for a new person as before.
   */
  private lookupFor(cacheKey: string): FindOptions {
    const known = this.cache.get(cacheKey)?.entry.state.contactId;
    return known === undefined ? { direct: false } : { contactId: known };
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

  private remember(key: string, identity: ContactIdentity, entry: VersionedContactState): void {
    if (this.options.cacheMs <= 0) return;
    // After a number or BSUID change the record no longer answers to the id it was found by: whoever
    // writes from that id next is someone else, and must be looked up, not handed the mover.
    if (!namesFirstId(entry.state, identity)) {
      this.cache.delete(key);
      return;
    }
    if (this.cache.size > 50_000) this.cache.clear();
    this.cache.set(key, { entry, at: this.now() });
  }
}

/** Whether the record still answers to the id its cache key is made of. */
function namesFirstId(state: ContactState, identity: ContactIdentity): boolean {
  const id = identity.groupId ?? identity.userId ?? identity.waId;
  return state.groupId === id || state.userId === id || state.waId === id;
}

/** The API's `:contact` is either id (or a group id): whichever the record holds. */
function anyId(contact: string): ContactIdentity {
  return { waId: contact.replace(/^\+/, ''), userId: contact, groupId: contact };
}

export type { ContactObservation };
