import { EventEmitter } from 'node:events';
import type { JournalNotice } from './journey';

/**
 * Journey steps as they are written, inside one process: the worker's journal writes publish here
 * and the console's live tail (SSE) listens. Processes without a worker learn about steps by
 * polling the line+time index instead (src/console/index-tail.ts).
 */
export class JournalBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    // One listener per open live tail; there is no leak to warn about.
    this.emitter.setMaxListeners(0);
  }

  publish(notice: JournalNotice): void {
    this.emitter.emit('step', notice);
  }

  /** Returns the unsubscribe function. `lineId` undefined: every line. */
  subscribe(lineId: string | undefined, listener: (notice: JournalNotice) => void): () => void {
    const filtered = (notice: JournalNotice) => {
      if (lineId === undefined || notice.lineId === lineId) listener(notice);
    };
    this.emitter.on('step', filtered);
    return () => this.emitter.off('step', filtered);
  }

  get listeners(): number {
    return this.emitter.listenerCount('step');
  }
}
