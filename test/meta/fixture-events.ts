import { createHash } from 'node:crypto';
import type { EventKind, WhatsAppEvent } from '../../src/meta/event';

/**
 * A test-side oracle for content-hash keys, written independently of src/meta/event-key.ts so the
 * tables check the key rule itself (which parts, sorted keys, sha256 hex), not the code against
 * itself. Only JSON values occur here: fixtures come from JSON.parse.
 */
export function expectedContentKey(
  kind: EventKind,
  parts: { field: string; wabaId?: string; phoneNumberId?: string; timestamp?: string; raw: unknown },
): string {
  return `${kind}#sha256:${createHash('sha256').update(sortedJson(parts)).digest('hex')}`;
}

function sortedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    return `{${Object.keys(record)
      .sort()
      .filter((name) => record[name] !== undefined)
      .map((name) => `${JSON.stringify(name)}:${sortedJson(record[name])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The value at a dotted path (`entry.0.changes.0.value`) of a parsed fixture. */
export function valueAt(root: unknown, path: string): unknown {
  if (path === '') return root;
  return path
    .split('.')
    .reduce<unknown>((node, step) => (node as Record<string, unknown> | undefined)?.[step], root);
}

/** The middle column of a table row: message type, status, or else the field. */
export function eventSubject(event: WhatsAppEvent): string {
  return event.message?.type ?? event.status?.status ?? event.field;
}

/** The same JSON with every object's keys in reverse order, at every depth. */
export function reverseKeyOrder(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reverseKeyOrder);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .reverse()
        .map(([name, member]) => [name, reverseKeyOrder(member)]),
    );
  }
  return value;
}

export const EVENT_KINDS: readonly EventKind[] = ['message', 'status', 'error', 'account', 'unknown'];
