import type { FailureReason } from '../errors';
import type { JourneyStep } from '../journal/journey';
import type { EventLease, LeaseListener } from './dedupe-store';

/** The record writes a lease needs; the token never leaves the store's side. */
export interface LeaseWrites {
  /** Push the lease `leaseMs` past now; false when it is no longer held by `token`. */
  extend(key: string, token: string, leaseMs: number): Promise<boolean>;
  /** `journal`: the lease's line and the steps to append in the same write (src/journal). */
  complete(key: string, token: string, journal?: LeaseJournal): Promise<void>;
  park(key: string, token: string, reason: FailureReason, journal?: LeaseJournal): Promise<void>;
  release(key: string, token: string, journal?: LeaseJournal): Promise<void>;
}

/** The journey steps a lease's final write carries, and the line they are published under. */
export interface LeaseJournal {
  lineId: string;
  steps: JourneyStep[];
}

/**
 * One claim's handle: its token, its renewal timer and the three ways it ends. After the end,
 * renewal stops and further calls of complete / park / release do nothing.
 */
export class RecordLease implements EventLease {
  private timer: NodeJS.Timeout | undefined;
  private ended = false;
  private lapsed = false;

  constructor(
    readonly key: string,
    readonly attempt: number,
    private readonly token: string,
    private readonly writes: LeaseWrites,
    private readonly leaseMs: number,
    /** The claim's line when it carried a journal: the final write appends its steps. */
    private readonly journalLineId?: string,
  ) {}

  get lost(): boolean {
    return this.lapsed;
  }

  keepAlive(listener: LeaseListener = {}): void {
    if (this.ended || this.timer) return;
    this.timer = setInterval(() => {
      this.writes.extend(this.key, this.token, this.leaseMs).then(
        (held) => {
          if (held || this.ended || this.lapsed) return;
          this.lapsed = true;
          this.stop();
          listener.onLost?.();
        },
        (error: unknown) => listener.onError?.(error),
      );
      // A third of the lease apart: one late or failed renewal does not lose it.
    }, Math.max(1000, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
  }

  complete(steps?: JourneyStep[]): Promise<void> {
    return this.end(() => this.writes.complete(this.key, this.token, this.journal(steps)));
  }

  park(reason: FailureReason, steps?: JourneyStep[]): Promise<void> {
    return this.end(() => this.writes.park(this.key, this.token, reason, this.journal(steps)));
  }

  release(steps?: JourneyStep[]): Promise<void> {
    return this.end(() => this.writes.release(this.key, this.token, this.journal(steps)));
  }

  private journal(steps: JourneyStep[] | undefined): LeaseJournal | undefined {
    return this.journalLineId !== undefined && steps && steps.length > 0 ? { lineId: this.journalLineId, steps } : undefined;
  }

  /**
   * Stop renewing first: a renewal landing after the final write must not matter. `complete` may be
   * tried again after a failure (the caller retries it in place), so only a success ends the lease.
   */
  private async end(write: () => Promise<void>): Promise<void> {
    if (this.ended) return;
    this.stop();
    await write();
    this.ended = true;
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
