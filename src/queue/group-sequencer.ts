/**
 * What `GroupSequencer.run` gives back: the task's value, or `held` when the task never ran because
 * an earlier task of its group (queued before it in this process) failed or asked to hold the group.
 */
export type Sequenced<T> = { ran: true; value: T } | { ran: false; held: true };

interface GroupState {
  /** Settles when the group's last scheduled task has settled. */
  tail: Promise<void>;
  pending: number;
  /** Set when a task held the group: every task already queued behind it is skipped. */
  held: boolean;
}

/**
 * Runs tasks so that two tasks of one group (an SQS FIFO MessageGroupId: a conversation, or one
 * recipient's replies) never run at once in this process, in the order they were scheduled, while
 * different groups run in parallel. When a task throws or its value `holdsGroup`, the tasks already
 * queued behind it are not run (`held`): the caller hands them back to the queue with it, so order
 * holds. Once the group's queue drains it starts afresh.
 * Written here: p-queue and cockatiel's bulkhead bound concurrency, but neither keys order by group.
 */
export class GroupSequencer<T> {
  private readonly groups = new Map<string, GroupState>();
  /** Tasks waiting for their turn, by the call that answers them `held` when a shutdown cancels them. */
  private readonly waiting = new Set<() => void>();
  /** Signals listened to: one listener each, however many tasks wait (a poller passes the same one to every message). */
  private readonly signals = new WeakSet<AbortSignal>();

  constructor(private readonly holdsGroup: (value: T) => boolean = () => false) {}

  /** Groups with a task running or queued. */
  get activeGroups(): number {
    return this.groups.size;
  }

  /**
   * `signal` (the poller's shutdown signal) cancels the task while it waits for its turn: the call
   * answers `held` at once, and the task never starts. A task already running is not cut short.
   */
  run(group: string, task: () => Promise<T>, signal?: AbortSignal): Promise<Sequenced<T>> {
    let state = this.groups.get(group);
    if (!state) {
      state = { tail: Promise.resolve(), pending: 0, held: false };
      this.groups.set(group, state);
    }
    const current = state;
    current.pending += 1;
    let cancelled = false;
    let cancel: (() => void) | undefined;
    const result = current.tail.then(async (): Promise<Sequenced<T>> => {
      // Its turn: from here on it is answered by what it does, not cancelled.
      if (cancel) this.waiting.delete(cancel);
      if (current.held || cancelled || signal?.aborted) return HELD;
      try {
        const value = await task();
        if (this.holdsGroup(value)) current.held = true;
        return { ran: true, value };
      } catch (error) {
        current.held = true;
        throw error;
      }
    });
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    current.tail = settled;
    void settled.then(() => {
      current.pending -= 1;
      if (current.pending === 0 && this.groups.get(group) === current) this.groups.delete(group);
    });
    if (!signal) return result;
    this.listen(signal);
    return new Promise<Sequenced<T>>((resolve, reject) => {
      cancel = () => {
        cancelled = true;
        resolve(HELD);
      };
      this.waiting.add(cancel);
      if (signal.aborted) this.cancelWaiting();
      result.then(resolve, reject);
    });
  }

  private listen(signal: AbortSignal): void {
    if (this.signals.has(signal)) return;
    this.signals.add(signal);
    signal.addEventListener('abort', () => this.cancelWaiting(), { once: true });
  }

  /** Answer `held` to every task still waiting for its turn; none of them will start. */
  private cancelWaiting(): void {
    for (const cancel of this.waiting) cancel();
    this.waiting.clear();
  }
}

const HELD = { ran: false, held: true } as const;
