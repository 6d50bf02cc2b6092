import type { ChildProcess } from 'node:child_process';

/** The benchmarks' parent ↔ child messages: a `type` and what goes with it. */
export type Message = { type: string } & Record<string, unknown>;

/** The next IPC message of type `type` from `source` (a child, or this process's parent). */
export function nextMessage<T>(source: NodeJS.EventEmitter, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Message) => {
      if (m?.type !== type) return;
      cleanup();
      resolve(m as unknown as T);
    };
    const onGone = () => {
      cleanup();
      reject(new Error(`the other process went away before sending ${type}`));
    };
    const cleanup = () => {
      source.off('message', onMessage);
      source.off('exit', onGone);
      source.off('disconnect', onGone);
    };
    source.on('message', onMessage);
    source.once('exit', onGone);
    source.once('disconnect', onGone);
  });
}

export function ask<T>(child: ChildProcess, message: Message, replyType: string): Promise<T> {
  const answer = nextMessage<T>(child, replyType);
  child.send(message);
  return answer;
}
