/**
 * Readers for JSON we did not write. A webhook body is signed by Meta but its shape is only
 * documented, not guaranteed, so every read here answers `undefined` (or an empty list) instead
 * of throwing when the value is not what the docs say.
 */

export type JsonObject = Record<string, unknown>;

/** A plain object (not null, not an array), or undefined. */
export function objectOrUndefined(value: unknown): JsonObject | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as JsonObject)
    : undefined;
}

/**
 * A non-empty string. A finite number is accepted and stringified because Meta sends some ids
 * and timestamps as integers (e.g. `timestamp: 1669233778`, `message_template_id`).
 * An empty string counts as absent: it can neither key nor label anything.
 */
export function textOrUndefined(value: unknown): string | undefined {
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

export function finiteNumberOrUndefined(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/**
 * The items of a list property. Absent (undefined or null) is an empty list. A single value
 * where a list belongs is treated as a one-item list so that it is still looked at (and, if it
 * cannot be understood, forwarded as `unknown`) rather than silently dropped.
 */
export function itemsOf(value: unknown): readonly unknown[] {
  if (value === undefined || value === null) return [];
  // Array.from, not the array itself: map and flatMap skip the holes of a sparse array and would
  // leave holes in the result, which callers would then read as events.
  return Array.isArray(value) ? Array.from(value) : [value];
}
