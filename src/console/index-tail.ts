import type { InboundJournal } from '../journal/inbound-journal';
import type { OutboundJournal } from '../journal/outbound-journal';
import type { JournalBus } from '../journal/journal-bus';
import type { Logger } from '../observability/logger';

/**
 * The live tail in a process without a worker (the `ingress` role serving the console while
 * workers run elsewhere): while at least one stream is open, poll each line's line+time index for
 * records updated since the last poll, read those records, and publish their new steps on the bus.
 * Bounded: only records received within `windowMinutes` are looked at.
 */
export class IndexTail {
  private subscribers = 0;
  private timer: NodeJS.Timeout | undefined;
  private since = new Date().toISOString();
  /** Steps already published, per handle: the newest step time seen. */
  private readonly seen = new Map<string, string>();
  private polling = false;

  constructor(
    private readonly options: {
      journal: InboundJournal;
      /** Replies, when this gateway sends them: their steps are tailed the same way. */
      outbound?: OutboundJournal;
      bus: JournalBus;
      lineIds: () => Promise<string[]>;
      intervalMs?: number;
      windowMinutes?: number;
      logger: Logger;
    },
  ) {}

  /** A stream opened; the returned function closes it. */
  subscribe(): () => void {
    this.subscribers++;
    if (!this.timer) {
      this.since = new Date().toISOString();
      this.timer = setInterval(() => void this.poll(), this.options.intervalMs ?? 1000);
      this.timer.unref();
    }
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      this.subscribers--;
      if (this.subscribers === 0) this.stop();
    };
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.seen.clear();
  }

  /** The steps of `handle` newer than the last one published (or than `from`), then remember the newest. */
  private published(handle: string, lineId: string, journey: { at: string; step: string }[], from: string): void {
    const last = this.seen.get(handle) ?? from;
    let newest = last;
    for (const step of [...journey].sort((a, b) => a.at.localeCompare(b.at))) {
      if (step.at <= last) continue;
      this.options.bus.publish({ handle, lineId, step: step.step, at: step.at });
      if (step.at > newest) newest = step.at;
    }
    this.seen.set(handle, newest);
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const from = this.since;
      let newest = from;
      for (const lineId of await this.options.lineIds()) {
        const changed = await this.options.journal.changedSince(lineId, from, this.options.windowMinutes ?? 15);
        for (const { handle, updatedAt } of changed) {
          if (updatedAt > newest) newest = updatedAt;
          const detail = await this.options.journal.get(handle);
          if (!detail) continue;
          this.published(detail.handle, detail.lineId, detail.journey, from);
        }
        for (const reply of (await this.options.outbound?.changedSince(lineId, from, this.options.windowMinutes ?? 15)) ?? []) {
          if (reply.updatedAt > newest) newest = reply.updatedAt;
          this.published(reply.id, reply.lineId, reply.journey, from);
        }
      }
      // Five seconds of overlap (index propagation, writes stamped before they land): they are read
      // again, and `seen` drops the steps already published.
      this.since = new Date(Math.max(Date.parse(from), Date.parse(newest) - 5000)).toISOString();
      if (this.seen.size > 10_000) this.seen.clear();
    } catch (error) {
      this.options.logger.warn({ err: error }, 'live tail: polling the journal index failed; trying again');
    } finally {
      this.polling = false;
    }
  }
}
