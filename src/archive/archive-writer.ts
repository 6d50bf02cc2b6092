import { randomBytes } from 'node:crypto';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../observability/logger';
import { exponentialBackoff } from '../resilience/backoff';
import type { ArchiveObjects } from './archive-objects';
import { archiveKey, toRecord, type ArchiveEntry } from './archive-record';

/** Where the ingress puts each accepted POST; never blocks and never throws (the 200 must not wait on it). */
export interface PayloadArchive {
  add(entry: ArchiveEntry): void;
  /** Write what is waiting now (SIGTERM); gives up, counting the records lost, after `withinMs`. */
  flush(withinMs?: number): Promise<void>;
}

export interface S3PayloadArchiveOptions {
  objects: ArchiveObjects;
  /** A record waits at most this long (while S3 answers) before its object is written. */
  flushMs: number;
  /** Records (NDJSON bytes) held while S3 is slow or down; past it new records are dropped, counted and logged. */
  maxBufferBytes: number;
  /** An object is written as soon as it holds this many records or bytes (default 1000 / 4 MiB). */
  maxObjectRecords?: number;
  maxObjectBytes?: number;
  logger: Logger;
  registry?: Registry;
  /** Delays between failed PUTs (default 200 ms doubling to 10 s, with jitter). */
  retryBaseMs?: number;
  retryMaxMs?: number;
}

interface Pending {
  line: string;
  bytes: number;
  receivedAt: string;
  contacts: readonly string[];
  /** When it was added (ms): an object is due once its oldest record waited flushMs. */
  addedAt: number;
}

/**
 * The ingress's archive of signed originals: accepted POSTs are buffered and written to S3 as
 * gzip'd NDJSON objects, one PUT per `flushMs` or per full object, by a single upload loop off the
 * request path. A failed PUT is retried with backoff; meanwhile records keep joining the buffer, so
 * the next attempt writes them all at once (an outage costs few PUTs, not one per flush). The
 * buffer is bounded: when it is full a record is dropped (counted, logged), never awaited.
 * A crash loses what is in the buffer: at most the last `flushMs` while S3 answers.
 */
export class S3PayloadArchive implements PayloadArchive {
  private readonly writer = randomBytes(4).toString('hex');
  private sequence = 0;
  private pending: Pending[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private uploading: Promise<void> | undefined;
  private failures = 0;
  private forceUntil = 0;
  private droppedSinceLog = 0;
  private lastDropLog = 0;
  private readonly maxObjectRecords: number;
  private readonly maxObjectBytes: number;
  private readonly records: Counter<'outcome'>;
  private readonly puts: Counter<'outcome'>;
  private readonly bytesWritten: Counter;

  constructor(private readonly options: S3PayloadArchiveOptions) {
    this.maxObjectRecords = options.maxObjectRecords ?? 1000;
    this.maxObjectBytes = options.maxObjectBytes ?? 4 * 1024 * 1024;
    const registers = options.registry ? [options.registry] : [];
    this.records = new Counter({
      name: 'wa_ingress_archive_records_total',
      help: 'Accepted webhook POSTs by archive outcome: archived (in S3), dropped (buffer full), lost (not written by shutdown)',
      labelNames: ['outcome'],
      registers,
    });
    this.puts = new Counter({ name: 'wa_ingress_archive_puts_total', help: 'Archive object PUTs by outcome', labelNames: ['outcome'], registers });
    this.bytesWritten = new Counter({ name: 'wa_ingress_archive_bytes_total', help: 'Compressed bytes written to the archive', registers });
    const self = this;
    new Gauge({
      name: 'wa_ingress_archive_pending_records',
      help: 'Accepted POSTs not yet in the archive',
      registers,
      collect() {
        this.set(self.pending.length);
      },
    });
    new Gauge({
      name: 'wa_ingress_archive_oldest_pending_seconds',
      help: 'How long the oldest record not yet in the archive has waited (grows while S3 fails)',
      registers,
      collect() {
        this.set(self.pending.length > 0 ? (Date.now() - self.pending[0]!.addedAt) / 1000 : 0);
      },
    });
  }

  add(entry: ArchiveEntry): void {
    const line = `${JSON.stringify(toRecord(entry))}\n`;
    const bytes = Buffer.byteLength(line);
    if (this.pendingBytes + bytes > this.options.maxBufferBytes) return this.drop();
    this.pending.push({ line, bytes, receivedAt: entry.receivedAt, contacts: entry.contacts, addedAt: Date.now() });
    this.pendingBytes += bytes;
    if (this.pending.length >= this.maxObjectRecords || this.pendingBytes >= this.maxObjectBytes) this.kick();
    else this.timer ??= setTimeout(() => this.kick(), this.options.flushMs);
  }

  async flush(withinMs = 5000): Promise<void> {
    const deadline = Date.now() + withinMs;
    this.forceUntil = deadline;
    while (this.pending.length > 0 && Date.now() < deadline) {
      this.kick();
      await Promise.race([this.uploading, new Promise((r) => setTimeout(r, Math.max(1, deadline - Date.now())))]);
    }
    if (this.pending.length > 0) {
      this.records.inc({ outcome: 'lost' }, this.pending.length);
      this.options.logger.error({ event: 'archive_lost', records: this.pending.length }, 'archive records not written before shutdown');
    }
  }

  private drop(): void {
    this.records.inc({ outcome: 'dropped' });
    this.droppedSinceLog++;
    // One line per 5 s at most: a full buffer under load would otherwise log per request.
    if (Date.now() - this.lastDropLog >= 5000) {
      this.options.logger.error(
        { event: 'archive_dropped', records: this.droppedSinceLog, bufferBytes: this.pendingBytes },
        'archive buffer full (S3 failing): accepted payloads are on the queue but not archived',
      );
      this.droppedSinceLog = 0;
      this.lastDropLog = Date.now();
    }
  }

  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.uploading ??= this.uploadLoop().finally(() => {
      this.uploading = undefined;
      this.scheduleNext();
    });
  }

  private scheduleNext(): void {
    if (this.pending.length === 0 || this.timer) return;
    const due = this.pending[0]!.addedAt + this.options.flushMs - Date.now();
    this.timer = setTimeout(() => this.kick(), Math.max(0, due));
  }

  private isDue(): boolean {
    if (this.pending.length === 0) return false;
    if (Date.now() < this.forceUntil) return true;
    return this.pending.length >= this.maxObjectRecords || this.pendingBytes >= this.maxObjectBytes || Date.now() - this.pending[0]!.addedAt >= this.options.flushMs;
  }

  private async uploadLoop(): Promise<void> {
    while (this.isDue()) {
      const count = this.objectSize();
      const chunk = this.pending.slice(0, count);
      try {
        await this.put(chunk);
      } catch (error) {
        this.puts.inc({ outcome: 'error' });
        this.failures++;
        const delay = exponentialBackoff(this.failures, this.options.retryBaseMs ?? 200, this.options.retryMaxMs ?? 10_000);
        this.options.logger.warn(
          { event: 'archive_put_failed', err: error, records: chunk.length, pending: this.pending.length, retryInMs: delay },
          'archive PUT failed; retrying (the webhooks are acknowledged and queued regardless)',
        );
        await new Promise((r) => setTimeout(r, delay));
        continue;
      }
      if (this.failures > 0) this.options.logger.info({ event: 'archive_recovered', afterFailures: this.failures }, 'archive writes succeed again');
      this.failures = 0;
      this.pending.splice(0, count);
      this.pendingBytes -= chunk.reduce((n, p) => n + p.bytes, 0);
      this.records.inc({ outcome: 'archived' }, chunk.length);
    }
  }

  /** How many of the oldest pending records the next object takes. */
  private objectSize(): number {
    let bytes = 0;
    let count = 0;
    while (count < this.pending.length && count < this.maxObjectRecords && (count === 0 || bytes + this.pending[count]!.bytes <= this.maxObjectBytes)) {
      bytes += this.pending[count]!.bytes;
      count++;
    }
    return count;
  }

  private async put(chunk: Pending[]): Promise<void> {
    const start = chunk.reduce((min, p) => (p.receivedAt < min ? p.receivedAt : min), chunk[0]!.receivedAt);
    const key = archiveKey(start, this.writer, this.sequence++);
    const bytes = await this.options.objects.put(key, chunk.map((p) => p.line).join(''), chunk.length, chunk.flatMap((p) => p.contacts));
    this.puts.inc({ outcome: 'ok' });
    this.bytesWritten.inc(bytes);
  }
}
