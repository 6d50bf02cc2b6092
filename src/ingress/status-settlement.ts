import { BrokenCircuitError, CircuitState, ConsecutiveBreaker, circuitBreaker, handleAll, type CircuitBreakerPolicy } from 'cockatiel';
import { PermanentError } from '../errors';
import { forwardsToFlow, type Line } from '../lines/line';
import type { LineRegistry } from '../lines/registry';
import type { WhatsAppEvent } from '../meta/event';
import { sharedCounter, type Counter, type Registry } from '../observability/metrics';
import type { Logger } from '../observability/logger';
import { looksLikeOutboundId } from '../outbound/record';
import type { SettledStatus } from '../outbound/status-settler';
import { LineRouter } from '../worker/router';

/** The settler's call the ingress makes (src/outbound/status-settler.ts StoreStatusSettler). */
export interface StatusSettleWrites {
  settleWithResult(lineId: string, event: WhatsAppEvent): Promise<SettledStatus | undefined>;
}

/** `failed` never: a 131047 closes the contact's window, and the line's flow may hear it. */
const SETTLED_HERE = new Set(['sent', 'delivered', 'read']);

/**
 * The statuses of a payload the ingress may settle itself, or undefined when any event needs the
 * worker: every event a sent/delivered/read status that echoes one of our outbound ids
 * (biz_opaque_callback_data), with a phone_number_id to route it. Pure.
 */
export function settleableStatuses(events: readonly WhatsAppEvent[]): readonly WhatsAppEvent[] | undefined {
  if (events.length === 0) return undefined;
  for (const event of events) {
    if (event.kind !== 'status' || !event.status || !SETTLED_HERE.has(event.status.status) || event.phoneNumberId === undefined) return undefined;
    if (!looksLikeOutboundId((event.raw as { biz_opaque_callback_data?: unknown } | undefined)?.biz_opaque_callback_data)) return undefined;
  }
  return events;
}

export interface IngressStatusSettlementOptions {
  lines: LineRegistry;
  settler: StatusSettleWrites;
  /** Bound on the settle writes (SQS_SEND_TIMEOUT_MS): past it the payload goes to SQS as before. */
  timeoutMs: number;
  /**
   * After this many payloads in a row whose writes failed or timed out, statuses go straight to SQS
   * for halfOpenAfterMs, then one payload tries again: a DynamoDB outage must not add the timeout to
   * every 200 Meta waits for. Defaults: 5 and 10 s.
   */
  breaker?: { consecutiveFailures: number; halfOpenAfterMs: number };
  registry: Registry;
  logger: Logger;
}

type Outcome = 'settled' | 'stale' | 'fallback';

class SettleTimeout extends Error {
  override readonly name = 'SettleTimeout';
}

/**
 * Statuses of our replies settled in the ingress, with no SQS message: with the line's
 * forwardStatuses keeping sent/delivered/read from its flow, the settle write (conditional, rank
 * forward, idempotent) is all such a status changes, so once it is durable the 200 may go. Anything
 * else — a status not ours, another line's, a write that failed or took too long — answers false and
 * the payload takes the SQS path as before; the worker settles again, and the rank decides.
 */
export class IngressStatusSettlement {
  private readonly outcomes: Counter<'result'>;
  private readonly breaker: CircuitBreakerPolicy;
  private readonly router: LineRouter;

  constructor(private readonly options: IngressStatusSettlementOptions) {
    this.router = new LineRouter(options.lines);
    const { consecutiveFailures, halfOpenAfterMs } = options.breaker ?? { consecutiveFailures: 5, halfOpenAfterMs: 10_000 };
    this.breaker = circuitBreaker(handleAll, { halfOpenAfter: halfOpenAfterMs, breaker: new ConsecutiveBreaker(consecutiveFailures) });
    this.breaker.onStateChange((state) => {
      if (state === CircuitState.Open) options.logger.warn({ event: 'status_settle_circuit_open', halfOpenAfterMs }, 'the ingress stops settling statuses for a while; they go to SQS');
      else if (state === CircuitState.Closed) options.logger.info({ event: 'status_settle_circuit_closed' }, 'the ingress settles statuses again');
    });
    this.outcomes = sharedCounter(options.registry, {
      name: 'wa_ingress_ingress_statuses_total',
      help: 'Statuses of our replies the ingress tried to settle itself, by result (settled, stale: the record was already as far; fallback: the payload went to SQS)',
      labelNames: ['result'],
    });
  }

  /** True when every event of the payload was settled (or found already settled) on our records. */
  async settle(events: readonly WhatsAppEvent[], urlLine: Line | null, log: () => Logger): Promise<boolean> {
    const statuses = settleableStatuses(events);
    if (!statuses) return false;
    let results: Outcome[];
    try {
      results = await this.breaker.execute(() => this.withinTimeout(this.settleAll(statuses, urlLine)));
    } catch (error) {
      if (!(error instanceof BrokenCircuitError)) log().warn({ err: error, statuses: statuses.length, event: 'status_settle_failed' }, 'statuses not settled in the ingress; queued for the worker');
      results = ['fallback'];
    }
    const settled = !results.includes('fallback');
    for (const result of settled ? results : statuses.map((): Outcome => 'fallback')) this.outcomes.inc({ result });
    return settled;
  }

  private async settleAll(statuses: readonly WhatsAppEvent[], urlLine: Line | null): Promise<Outcome[]> {
    const lines = await Promise.all(statuses.map((event) => this.lineOf(event, urlLine)));
    if (lines.some((line) => line === undefined)) return ['fallback'];
    const settled = await Promise.all(statuses.map((event, i) => this.options.settler.settleWithResult(lines[i]!.lineId, event)));
    return settled.map((s) => (s?.result === 'applied' ? 'settled' : s?.result === 'stale' ? 'stale' : 'fallback'));
  }

  /** The worker's own routing (LineRouter); undefined when it would not route the status to a line that keeps it from Bird. */
  private async lineOf(event: WhatsAppEvent, urlLine: Line | null): Promise<Line | undefined> {
    let line: Line;
    try {
      line = await this.router.lineOfNumber(event.phoneNumberId!, urlLine?.lineId);
    } catch (error) {
      if (error instanceof PermanentError) return undefined; // unrouted, misrouted, inactive: the worker parks it
      throw error;
    }
    return forwardsToFlow(line.forwardStatuses, event.kind, event.status?.status) ? undefined : line;
  }

  private async withinTimeout<T>(work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SettleTimeout(`the settle writes took more than ${this.options.timeoutMs} ms`)), this.options.timeoutMs);
    });
    try {
      return await Promise.race([work, expired]);
    } finally {
      clearTimeout(timer);
    }
  }
}
