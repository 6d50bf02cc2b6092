/**
 * The one deadline helper of the codebase: how long a piece of work may take before the caller
 * stops waiting for it. The work itself is not cancelled (pass it an AbortSignal for that).
 */

/** Resolves true when `work` settles within `ms`, false when the time runs out first. */
export async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  const settled = work.then(
    () => true as const,
    () => true as const,
  );
  return withDeadline(settled, ms, () => false as const);
}

/** `work`'s outcome, or `onTimeout()`'s (a value, or a throw) when `ms` pass first. */
export async function withDeadline<T, U = never>(work: Promise<T>, ms: number, onTimeout: () => U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), Math.max(0, ms));
  });
  try {
    const first = await Promise.race([work.then((value) => ({ value })), timeout]);
    return first === 'timeout' ? onTimeout() : first.value;
  } finally {
    clearTimeout(timer);
  }
}

/** A sleep that `signal` cuts short (resolves early, never rejects), with one removable listener: on Node 20, AbortSignal.any keeps every dependent signal alive. */
export function sleep(ms: number, signal?: AbortSignal, onCancel?: (cancel: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    if (signal?.aborted) return done();
    signal?.addEventListener('abort', done, { once: true });
    onCancel?.(done);
  });
}
