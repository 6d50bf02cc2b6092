/**
 * Milliseconds a `Retry-After` header asks us to wait (delta-seconds or HTTP-date, RFC 9110
 * §10.2.3), or undefined when absent or unreadable. A date in the past means "now" (0).
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  if (trimmed === '') return undefined;
  if (/^[0-9]+$/.test(trimmed)) return Number(trimmed) * 1000;
  // An HTTP-date always names its day and month; Date.parse alone would read "-5" as a year.
  if (!/[A-Za-z]/.test(trimmed)) return undefined;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}
