import { readdirSync, readFileSync } from 'node:fs';

/** CPU seconds (user + system) a process has used, from Linux /proc at its 100 Hz tick; NaN elsewhere. */
export function cpuSecondsOf(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** The pids of a process's children, from Linux /proc (every thread's `children`); [] elsewhere. */
export function childPidsOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}
