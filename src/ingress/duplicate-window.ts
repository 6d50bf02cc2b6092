import { Counter, type Registry } from 'prom-client';

/** SQS FIFO's deduplication interval. */
export const FIFO_DEDUP_WINDOW_MS = 5 * 60_000;

/**
 * Counts the payloads SQS FIFO deduplication absorbs. SQS answers a duplicate send (same group,
 * same MessageDeduplicationId within 5 minutes) with success and stores nothing, so the ingress
 * cannot be told; it remembers the sha256 of what it sent in the last 5 minutes instead. A
 * payload accepted again within that window is counted, with whether SQS returned the first
 * send's MessageId (which confirms it: local-aws-sqs does, and so does SQS for a duplicate).
 * An estimate per process: a repeat that lands on another ingress instance is not counted, and
 * entries beyond `maxEntries` are forgotten oldest first.
 */
export class DuplicateWindow {
  private readonly sent = new Map<string, { messageId: string; at: number }>();
  private readonly caught: Counter<'same_message_id'>;

  constructor(
    registry: Registry | undefined,
    private readonly options: { windowMs?: number; maxEntries?: number; now?: () => number } = {},
  ) {
    this.caught = new Counter({
      name: 'wa_ingress_fifo_duplicates_total',
      help: 'Payloads accepted again within the FIFO dedup window (same body sha256): SQS drops them, the worker never sees them. Estimate per ingress process',
      labelNames: ['same_message_id'],
      registers: registry ? [registry] : [],
    });
  }

  /** After SQS accepted a payload: true when it was a repeat within the window (and counted). */
  accepted(sha256: string, messageId: string): boolean {
    const now = (this.options.now ?? Date.now)();
    const windowMs = this.options.windowMs ?? FIFO_DEDUP_WINDOW_MS;
    const first = this.sent.get(sha256);
    if (first && now - first.at < windowMs) {
      this.caught.inc({ same_message_id: String(first.messageId === messageId) });
      return true;
    }
    // Re-inserted so the map stays in send order: the oldest entries are the first to go.
    this.sent.delete(sha256);
    this.sent.set(sha256, { messageId, at: now });
    const max = this.options.maxEntries ?? 100_000;
    for (const [key, entry] of this.sent) {
      if (this.sent.size <= max && now - entry.at < windowMs) break;
      this.sent.delete(key);
    }
    return false;
  }
}
