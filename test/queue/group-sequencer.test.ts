import { GroupSequencer } from '../../src/queue/group-sequencer';

const tick = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('GroupSequencer', () => {
  it('runs one group one task at a time, in scheduling order', async () => {
    const sequencer = new GroupSequencer<number>();
    const log: string[] = [];
    let running = 0;
    let maxRunning = 0;
    const tasks = [30, 5, 20, 1].map((ms, i) =>
      sequencer.run('alice', async () => {
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        log.push(`start ${i}`);
        await tick(ms);
        log.push(`end ${i}`);
        running -= 1;
        return i;
      }),
    );
    const results = await Promise.all(tasks);
    expect(results).toEqual([0, 1, 2, 3].map((value) => ({ ran: true, value })));
    expect(maxRunning).toBe(1);
    expect(log).toEqual(['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
    expect(sequencer.activeGroups).toBe(0);
  });

  it('runs different groups in parallel', async () => {
    const sequencer = new GroupSequencer<void>();
    const started = Date.now();
    await Promise.all(['a', 'b', 'c', 'd', 'e'].map((g) => sequencer.run(g, () => tick(50))));
    // Serialised, five 50 ms tasks take 250 ms; in parallel about 50.
    expect(Date.now() - started).toBeLessThan(200);
  });

  it('skips the tasks queued behind one that holds the group, then starts afresh', async () => {
    const sequencer = new GroupSequencer<string>((value) => value === 'retry');
    const ran: number[] = [];
    const task = (i: number, value: string) => () => {
      ran.push(i);
      return tick(5).then(() => value);
    };
    const first = await Promise.all([
      sequencer.run('bob', task(1, 'ok')),
      sequencer.run('bob', task(2, 'retry')),
      sequencer.run('bob', task(3, 'ok')),
      sequencer.run('bob', task(4, 'ok')),
      sequencer.run('carol', task(5, 'ok')),
    ]);
    expect(first.map((r) => r.ran)).toEqual([true, true, false, false, true]);
    expect(ran.sort()).toEqual([1, 2, 5]);
    const later = await sequencer.run('bob', task(6, 'ok'));
    expect(later).toEqual({ ran: true, value: 'ok' });
  });

  it('holds the group when a task throws, and passes the error to its caller', async () => {
    const sequencer = new GroupSequencer<number>();
    const failing = sequencer.run('dave', async () => {
      throw new Error('boom');
    });
    const behind = sequencer.run('dave', async () => 2);
    await expect(failing).rejects.toThrow('boom');
    expect(await behind).toEqual({ ran: false, held: true });
  });
});
