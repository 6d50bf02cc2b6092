import type { Logger } from '../../observability/logger';
import { Counter, type Registry } from '../../observability/metrics';
import { newRunnerId, type DynamoErasureStore } from './dynamo-erasure-store';
import type { ErasureRecord } from './erasure';
import type { ErasureStep } from './steps/erasure-step';

export interface ErasureRunnerOptions {
  store: DynamoErasureStore;
  /** In order; each runs to the end before the next. */
  steps: ErasureStep[];
  logger: Logger;
  registry?: Registry;
  /** How often the pending index is read. */
  pollMs?: number;
  /** A runner that dies holds an erasure this long at most; renewed at every checkpoint. */
  leaseMs?: number;
  batchSize?: number;
}

/**
 * Runs pending erasures in the worker role. Finds them through the erasures table's sparse pending
 * index, takes each one's lease, and runs its steps in order, checkpointing on the record: before a
 * batch is removed its ids are written (a crash mid-batch redoes that batch and counts it once),
 * after it its count is added; a finished step is listed as done and skipped on resume. Any runner
 * resumes an erasure whose lease lapsed, so a SIGKILL costs at most the lease.
 */
export class ErasureRunner {
  private readonly owner = newRunnerId();
  private readonly pollMs: number;
  private readonly leaseMs: number;
  private readonly batchSize: number;
  private readonly completed: Counter<'outcome'>;
  private readonly removed: Counter<'step'>;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  private again = false;

  constructor(private readonly options: ErasureRunnerOptions) {
    this.pollMs = options.pollMs ?? 2000;
    this.leaseMs = options.leaseMs ?? 15_000;
    this.batchSize = options.batchSize ?? 25;
    const registers = options.registry ? [options.registry] : [];
    this.completed = new Counter({ name: 'wa_ingress_erasures_total', help: 'Erasure runs by outcome: done, failed (retried at the next poll)', labelNames: ['outcome'], registers });
    this.removed = new Counter({ name: 'wa_ingress_erasure_removed_total', help: 'Items an erasure removed, by step', labelNames: ['step'], registers });
  }

  get stepNames(): string[] {
    return this.options.steps.map((step) => step.name);
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** An erasure was just accepted in this process: look now rather than at the next poll. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) this.again = true;
    else this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One pass over the pending erasures; each one this runner can lease runs to its end. */
  async runPending(): Promise<ErasureRecord[]> {
    const done: ErasureRecord[] = [];
    for (const pending of await this.options.store.pending()) {
      if (this.stopped) break;
      const leased = await this.options.store.lease(pending.id, this.owner, this.leaseMs);
      if (!leased) continue;
      try {
        done.push(await this.run(leased));
        this.completed.inc({ outcome: 'done' });
      } catch (error) {
        this.completed.inc({ outcome: 'failed' });
        this.options.logger.warn({ err: error, erasureId: pending.id, lineId: pending.lineId }, 'erasure interrupted; it resumes at the next poll');
      }
    }
    return done;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.runPending()
        .then(
          () => undefined,
          (error: unknown) => this.options.logger.warn({ err: error }, 'erasure poll failed; retrying at the next poll'),
        )
        .finally(() => {
          this.running = undefined;
          const next = this.again ? 0 : this.pollMs;
          this.again = false;
          this.schedule(next);
        });
    }, delayMs);
    this.timer.unref?.();
  }

  private async run(record: ErasureRecord): Promise<ErasureRecord> {
    const { store } = this.options;
    const counts = { ...record.counts };
    for (const step of this.options.steps) {
      if (record.stepsDone.includes(step.name)) continue;
      // Ids removed in this run: an index that lags behind a removal may list one again; it is removed again, counted once.
      const seen = new Set<string>();
      if (record.batch?.step === step.name) {
        await step.remove(record, record.batch.ids);
        await store.endBatch(record.id, this.owner, step.name, record.batch.ids.length);
        counts[step.name] = (counts[step.name] ?? 0) + record.batch.ids.length;
        record.batch.ids.forEach((id) => seen.add(id));
      }
      for (;;) {
        if (this.stopped) throw new Error('stopping: the erasure resumes after the restart');
        const ids = await step.find(record, this.batchSize);
        const fresh = ids.filter((id) => !seen.has(id));
        if (ids.length === 0 || fresh.length === 0) {
          if (ids.length > 0) await step.remove(record, ids);
          break;
        }
        await store.beginBatch(record.id, this.owner, { step: step.name, ids: fresh });
        await step.remove(record, fresh);
        await store.endBatch(record.id, this.owner, step.name, fresh.length);
        await store.lease(record.id, this.owner, this.leaseMs);
        fresh.forEach((id) => seen.add(id));
        counts[step.name] = (counts[step.name] ?? 0) + fresh.length;
        this.removed.inc({ step: step.name }, fresh.length);
      }
      await store.stepDone(record.id, this.owner, step.name);
      counts[step.name] ??= 0;
      this.options.logger.info({ event: 'erasure_step_done', erasureId: record.id, lineId: record.lineId, step: step.name, removed: counts[step.name] }, 'erasure step done');
    }
    const finished = await store.finish({ ...record, counts }, this.owner);
    // The audit trail: never the number, only its digest and its last four characters.
    this.options.logger.info(
      {
        event: 'erasure_completed',
        erasureId: finished.id,
        lineId: finished.lineId,
        contactDigest: finished.contactDigest,
        contact: finished.contactLastFour,
        counts,
        requestedAt: finished.requestedAt,
        requestedBy: finished.requestedBy,
        completedAt: finished.completedAt,
      },
      'contact erased',
    );
    return finished;
  }
}
