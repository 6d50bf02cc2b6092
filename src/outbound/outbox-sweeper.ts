import { Histogram, type Registry } from '../observability/metrics';
import { maskPhone, type Logger } from '../observability/logger';
import type { OutboundBody } from './job';
import type { OutboundJobQueue } from './job-queue';
import type { OutboxIndex, PendingOutbound } from './outbox-index';

export const REQUEUE_DELAY_METRIC = 'wa_ingress_outbound_requeue_delay_seconds';

export interface OutboxSweeperOptions {
  index: OutboxIndex;
  jobs: Pick<OutboundJobQueue, 'enqueue'>;
  /** OUTBOUND_OUTBOX_AGE_MS: a record pending longer than this is enqueued again. */
  ageMs: number;
  /** OUTBOUND_OUTBOX_SWEEP_MS: the pause between two sweeps. */
  intervalMs: number;
  /** A sweep enqueues at most this many; the next sweep takes the rest. */
  maxPerSweep?: number;
  registry: Registry;
  logger: Logger;
  clock?: () => number;
}

export interface SweepResult {
  requeued: number;
  /** Found in the outbox but no longer `queued` (the index lags, or a path left it there): taken out. */
  tidied: number;
  failed: number;
}

/**
 * The outbox's other half: every `intervalMs`, the records still pending (written, never claimed)
 * for longer than `ageMs` are enqueued again, with the acceptor's encoding, and then left alone for
 * another `ageMs` (a backlog on the queue is not enqueued again at every sweep). Whatever happened
 * between "record written" and "job queued" (a failed SendMessage, a SIGKILL, a caller that never
 * retried its 503, an event answered differently on its retry), the reply goes out.
 *
 * Enqueueing again is harmless: FIFO deduplication (id = the outbound id) drops a copy within 5
 * minutes, and past that the record's claim decides who sends. So several workers may sweep at once.
 */
export class OutboxSweeper {
  private readonly requeueDelay: Histogram;
  private readonly clock: () => number;
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;
  private started = false;
  /** Set by stop(): a sweep under way ends after the record in hand. */
  private stopping = false;

  constructor(private readonly options: OutboxSweeperOptions) {
    this.clock = options.clock ?? Date.now;
    const existing = options.registry.getSingleMetric(REQUEUE_DELAY_METRIC);
    this.requeueDelay =
      (existing as Histogram | undefined) ??
      new Histogram({
        name: REQUEUE_DELAY_METRIC,
        help: 'Outbox: time from "record written" to "job queued again" for replies whose job never reached the outbound queue (or had not been claimed)',
        buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600],
        registers: [options.registry],
      });
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.stopping = false;
    this.schedule();
  }

  /** No sweep starts after this; resolves once the one under way (if any) is done. */
  async stop(): Promise<void> {
    this.started = false;
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  async sweep(): Promise<SweepResult> {
    const result: SweepResult = { requeued: 0, tidied: 0, failed: 0 };
    const now = this.clock();
    const pending = await this.options.index.pendingBefore(new Date(now - this.options.ageMs).toISOString(), this.options.maxPerSweep ?? 1000);
    for (const record of pending) {
      if (this.stopping) break;
      const outcome = await this.requeue(record, now).catch((error: unknown) => {
        this.options.logger.warn({ err: error, outboundId: record.id, lineId: record.lineId }, 'outbox: could not enqueue a pending reply again; the next sweep retries');
        return 'failed' as const;
      });
      result[outcome]++;
    }
    if (result.requeued + result.failed > 0) this.options.logger.info({ event: 'outbox_swept', ...result }, 'outbox: pending replies enqueued again');
    return result;
  }

  private async requeue(record: PendingOutbound, now: number): Promise<keyof SweepResult> {
    const body = record.status === 'queued' ? parseBody(record.sendBody) : undefined;
    if (!body) {
      if (record.status === 'queued') this.options.logger.error({ outboundId: record.id, lineId: record.lineId }, 'outbox: a pending reply has no readable send body; it cannot be enqueued again');
      await this.options.index.leave(record.id);
      return 'tidied';
    }
    await this.options.jobs.enqueue(record.id, { lineId: record.lineId, to: record.to, idempotencyKey: record.idempotencyKey, source: record.source, body });
    await this.options.index.requeued(record.id, new Date(this.clock()).toISOString());
    const delaySeconds = Math.max(0, now - Date.parse(record.createdAt)) / 1000;
    this.requeueDelay.observe(delaySeconds);
    this.options.logger.warn({ event: 'outbox_requeued', outboundId: record.id, lineId: record.lineId, to: maskPhone(record.to), delaySeconds }, 'outbox: a reply pending past the threshold was enqueued again');
    return 'requeued';
  }

  private schedule(): void {
    if (!this.started) return;
    this.timer = setTimeout(() => {
      this.running = this.sweep()
        .catch((error: unknown) => this.options.logger.warn({ err: error }, 'outbox sweep failed; the next one retries'))
        .finally(() => {
          this.running = undefined;
          this.schedule();
        });
    }, this.options.intervalMs);
    this.timer.unref();
  }
}

function parseBody(raw: string | undefined): OutboundBody | undefined {
  if (!raw) return undefined;
  try {
    const body = JSON.parse(raw) as unknown;
    return body !== null && typeof body === 'object' && typeof (body as { type?: unknown }).type === 'string' ? (body as OutboundBody) : undefined;
  } catch {
    return undefined;
  }
}
