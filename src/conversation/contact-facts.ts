import { objectOrUndefined, textOrUndefined } from '../meta/untrusted-json';
import type { WhatsAppEvent } from '../meta/event';
import { metaTimeMs, type ContactFact, type ContactIdentity } from './contact-state';

/** An id move (user_changed_number / user_changed_user_id): it carries state over, and creates none. */
export function movesIdentity(observation: ContactObservation): boolean {
  return observation.facts.some((fact) => fact.type === 'number_changed' || fact.type === 'user_id_changed');
}

/** What the state of a conversation learns from one event. Pure. */
export interface ContactObservation {
  /** The ids the event names the conversation by: how its record is found, and what it learns. */
  identity: ContactIdentity;
  /** Meta's timestamp of the event (epoch ms): how new its ids are. */
  at?: number;
  /** An id move's new id: the record is looked for by it too, when a later message already taught it. */
  movedTo?: ContactIdentity;
  facts: ContactFact[];
}

export const DEFAULT_PAUSE_MINUTES = 60;

/**
 * The facts in an event, or undefined when it says nothing about a conversation (statuses of our
 * sends: a business send never refreshes the window, though a 131047 `failed` closes it; errors;
 * other account changes).
 * `pauseMinutes`: the line's `handoff.pauseMinutes`.
 */
export function observationOf(event: WhatsAppEvent, pauseMinutes = DEFAULT_PAUSE_MINUTES): ContactObservation | undefined {
  const identity: ContactIdentity = event.groupId !== undefined
    ? { groupId: event.groupId }
    : { waId: event.contact?.waId, userId: event.contact?.userId };
  if (identity.groupId === undefined && identity.waId === undefined && identity.userId === undefined) return undefined;
  const at = metaTimeMs(event.timestamp);
  const facts: ContactFact[] = [];
  if (event.kind === 'message') {
    // A system message is WhatsApp's notice, not the person writing: it moves ids, never the window.
    if (event.message?.type === 'system') facts.push(...identityChange(event.raw, at ?? 0));
    else if (at !== undefined) facts.push({ type: 'inbound', at });
  } else if (event.kind === 'account' && at !== undefined) {
    facts.push(...accountFacts(event, at, pauseMinutes));
  } else if (event.kind === 'status' && at !== undefined && closesWindow(event.raw)) {
    // Meta's word that the window is closed outranks what we derived (a message we never saw, a clock skew).
    facts.push({ type: 'window_closed', at });
  } else if (event.kind === 'turn') {
    // A turn's messages each opened the window when they were buffered: nothing new, only the state to tell Bird.
    return { identity, at, facts };
  } else {
    return undefined;
  }
  const moved = facts.find((fact) => fact.type === 'number_changed' || fact.type === 'user_id_changed');
  const movedTo = moved?.type === 'number_changed' ? { waId: moved.newWaId } : moved?.type === 'user_id_changed' ? { userId: moved.newUserId } : undefined;
  return { identity, at, facts, ...(movedTo ? { movedTo } : {}) };
}

/**
 * `user_changed_number` carries the new number in `system.wa_id`; `user_changed_user_id` the new BSUID
 * in `system.user_id` (Meta's system messages reference). Older payloads name the second
 * `customer_identity_changed`; it carries no new id, so it moves nothing.
 */
function identityChange(raw: unknown, at: number): ContactFact[] {
  const system = objectOrUndefined(objectOrUndefined(raw)?.system);
  const type = textOrUndefined(system?.type);
  const newWaId = textOrUndefined(system?.wa_id);
  const newUserId = textOrUndefined(system?.user_id);
  if (type === 'user_changed_number' && newWaId) return [{ type: 'number_changed', newWaId, at }];
  if (type === 'user_changed_user_id' && newUserId) return [{ type: 'user_id_changed', newUserId, at }];
  return [];
}

function accountFacts(event: WhatsAppEvent, at: number, pauseMinutes: number): ContactFact[] {
  const value = objectOrUndefined(event.raw);
  switch (event.field) {
    case 'smb_message_echoes':
      return [{ type: 'business_echo', at, pauseMinutes }];
    case 'calls':
      // Only a call from the person opens the window; one the business placed is a business send.
      return isFromThePerson(value) ? [{ type: 'call', at }] : [];
    case 'messaging_handovers': {
      const type = textOrUndefined(value?.type);
      // control_passed reaches the new owner (us: control is back); control_taken the previous one (us: we lost it).
      if (type === 'control_passed') return [{ type: 'thread_control_back', at }];
      if (type === 'control_taken') return [{ type: 'thread_control_lost', at }];
      return [];
    }
    case 'standby':
      // We get standby only while another sender (Meta Business Agent) handles the thread; its user messages still open the window.
      return [{ type: 'inbound', at }, { type: 'thread_control_lost', at }];
    default:
      return [];
  }
}

/** A `failed` status whose error is 131047 (outside the customer service window). */
function closesWindow(raw: unknown): boolean {
  const status = objectOrUndefined(raw);
  if (textOrUndefined(status?.status) !== 'failed' || !Array.isArray(status?.errors)) return false;
  return status.errors.some((error) => objectOrUndefined(error)?.code === 131047);
}

function isFromThePerson(value: Record<string, unknown> | undefined): boolean {
  const call = objectOrUndefined(Array.isArray(value?.calls) ? value.calls[0] : undefined);
  const direction = textOrUndefined(call?.direction);
  return call !== undefined && (direction === undefined || direction === 'USER_INITIATED');
}
