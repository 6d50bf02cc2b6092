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

  constructor(private readonly holdsGroup: (value: T) => boolean = () => false) {}

  /** Groups with a task running or queued. */
  get activeGroups(): number {
    return this.groups.size;
  }

  run(group: string, task: () => Promise<T>): Promise<Sequenced<T>> {
    let state = this.groups.get(group);
    if (!state) {
      state = { tail: Promise.resolve(), pending: 0, held: false };
      this.groups.set(group, state);
    }
    const current = state;
    current.pending += 1;
    const result = current.tail.then(async (): Promise<Sequenced<T>> => {
      if (current.held) return { ran: false, held: true };
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
    return result;
  }
}
