import { DeleteObjectsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '../observability/logger';

const DAY_MS = 86_400_000;
/** The lifecycle rule infra/ declares covers this prefix; the sweep covers the same. */
const MEDIA_PREFIX = 'media/';

/**
 * MEDIA_RETENTION_DAYS where no S3 lifecycle rule runs (the embedded default's s3rver): deletes the
 * media objects older than the retention, at start and then every `intervalMs`. In AWS the bucket's
 * lifecycle rule (infra/lib/storage.ts) does this, and no sweep runs.
 */
export class MediaRetentionSweep {
  private timer?: NodeJS.Timeout;
  private running?: Promise<number>;

  constructor(
    private readonly options: {
      s3: S3Client;
      bucket: string;
      retentionDays: number;
      logger: Logger;
      intervalMs?: number;
      now?: () => number;
    },
  ) {}

  start(): void {
    const tick = () => {
      this.running = this.sweep().catch((error: unknown) => {
        this.options.logger.warn({ err: error }, 'media retention sweep failed; retrying at the next one');
        return 0;
      });
    };
    tick();
    this.timer = setInterval(tick, this.options.intervalMs ?? 3_600_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** Deletes the media objects last written before the retention; returns how many. */
  async sweep(): Promise<number> {
    const cutoff = (this.options.now ?? Date.now)() - this.options.retentionDays * DAY_MS;
    let deleted = 0;
    let token: string | undefined;
    do {
      const page = await this.options.s3.send(new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: MEDIA_PREFIX, ContinuationToken: token }));
      const expired = (page.Contents ?? []).filter((object) => object.Key && object.LastModified && object.LastModified.getTime() < cutoff);
      if (expired.length > 0) {
        await this.options.s3.send(new DeleteObjectsCommand({ Bucket: this.options.bucket, Delete: { Objects: expired.map((o) => ({ Key: o.Key! })), Quiet: true } }));
        deleted += expired.length;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    if (deleted > 0) this.options.logger.info({ event: 'media_retention_sweep', deleted, retentionDays: this.options.retentionDays }, 'expired media deleted');
    return deleted;
  }
}
