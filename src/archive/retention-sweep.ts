import type { Logger } from '../observability/logger';
import type { ArchiveObjects } from './archive-objects';
import { ARCHIVE_PREFIX, keyStart } from './archive-record';

const DAY_MS = 86_400_000;

/**
 * ARCHIVE_RETENTION_DAYS on the embedded default, whose S3 stand-in has no lifecycle rules (in AWS
 * the bucket's lifecycle rule does this, infra/lib/storage.ts): deletes archive objects whose
 * first record is older than the retention, at start and then hourly.
 */
export class ArchiveRetentionSweep {
  private timer: NodeJS.Timeout | undefined;
  private running?: Promise<unknown>;

  constructor(private readonly options: { objects: ArchiveObjects; retentionDays: number; logger: Logger; intervalMs?: number; clock?: () => number }) {}

  /** Deletes what is past the retention; returns how many objects went. */
  async sweep(): Promise<number> {
    const cutoff = (this.options.clock ?? Date.now)() - this.options.retentionDays * DAY_MS;
    let deleted = 0;
    for await (const { key } of this.options.objects.list(ARCHIVE_PREFIX)) {
      const start = keyStart(key);
      if (start === undefined || start >= cutoff) continue;
      await this.options.objects.delete(key);
      deleted++;
    }
    if (deleted > 0) this.options.logger.info({ deleted, retentionDays: this.options.retentionDays }, 'archive objects past retention deleted');
    return deleted;
  }

  start(): void {
    const run = () => {
      this.running = this.sweep().catch((err: unknown) => this.options.logger.warn({ err }, 'archive retention sweep failed; next one in an hour'));
    };
    run();
    this.timer = setInterval(run, this.options.intervalMs ?? 3_600_000);
    this.timer.unref();
  }

  /** A sweep under way finishes first: the clients it uses are closed after this. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
