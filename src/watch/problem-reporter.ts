import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../observability/logger';
import type { ProblemStore } from './problem-store';
import { LINE_PROBLEMS, PROBLEM_ADVICE, problemChanges, type ActiveProblem, type ProblemVerdict } from './problems';

export const LINE_PROBLEM_GAUGE = 'wa_ingress_line_problem';

/** The gauge is shared by the watcher, the worker's account events and the refresher of one process. */
function problemGauge(registry: Registry): Gauge<'lineId' | 'problem'> {
  const existing = registry.getSingleMetric(LINE_PROBLEM_GAUGE);
  if (existing) return existing as Gauge<'lineId' | 'problem'>;
  return new Gauge({
    name: LINE_PROBLEM_GAUGE,
    help: 'Problems on Meta\'s side of a line (1 present, 0 absent), as the watcher and account webhooks last saw them',
    labelNames: ['lineId', 'problem'],
    registers: [registry],
  });
}

/**
 * Turns verdicts into stored problems, the gauge, and logs: a warn once per raise or change, an
 * info when cleared. The store's atomic write returns what was there before, so exactly one
 * process logs each change even when the watcher and a worker write the same line at once.
 */
export class ProblemReporter {
  private readonly gauge: Gauge<'lineId' | 'problem'>;

  constructor(private readonly options: { store: ProblemStore; registry: Registry; logger: Logger; clock?: () => Date }) {
    this.gauge = problemGauge(options.registry);
  }

  async apply(lineId: string, verdict: ProblemVerdict, source: 'watch' | 'webhook'): Promise<void> {
    const before = await this.options.store.apply(lineId, verdict, this.options.clock?.() ?? new Date());
    const { raised, changed, cleared } = problemChanges(before, verdict);
    for (const p of [...raised, ...changed]) {
      this.options.logger.warn({ event: 'line_problem', lineId, problem: p.problem, detail: p.detail, source, todo: PROBLEM_ADVICE[p.problem] }, `line ${lineId}: ${p.problem}`);
    }
    for (const p of cleared) this.options.logger.info({ event: 'line_problem_cleared', lineId, problem: p.problem, since: p.since, source }, `line ${lineId}: ${p.problem} cleared`);
    for (const problem of verdict.checked) this.gauge.set({ lineId, problem }, verdict.found[problem] === undefined ? 0 : 1);
  }

  /** Reads the stored problems of these lines into the gauge; returns how many lines have one. */
  async refresh(lineIds: string[]): Promise<number> {
    const stored = await this.options.store.read(lineIds);
    this.show(lineIds, stored);
    return lineIds.filter((id) => (stored.get(id) ?? []).length > 0).length;
  }

  /** Sets the whole gauge from stored problems: every known problem of every line, 0 or 1. */
  show(lineIds: string[], stored: Map<string, ActiveProblem[]>): void {
    for (const lineId of lineIds) {
      const present = new Set((stored.get(lineId) ?? []).map((p) => p.problem));
      for (const problem of LINE_PROBLEMS) this.gauge.set({ lineId, problem }, present.has(problem) ? 1 : 0);
    }
  }
}
