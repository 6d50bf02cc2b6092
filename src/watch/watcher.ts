import { Gauge, type Registry } from 'prom-client';
import type { Line } from '../lines/line';
import type { SecretResolver } from '../lines/secrets';
import type { Logger } from '../observability/logger';
import type { ArrivalHistory } from './arrivals';
import type { GraphWatchClient } from './graph-watch-client';
import type { ProblemReporter } from './problem-reporter';
import { deriveProblems, type GraphAnswer, type ProblemVerdict } from './problems';
import { DEFAULT_SILENCE_RULE, silenceDetail, silenceVerdict, type SilenceRule } from './silence';
import type { Lease } from './watch-lease';

/** The `event` of the log line each round ends with; infra's LineProblems alarm reads `linesWithProblems` from it. */
export const WATCH_ROUND_EVENT = 'watch_round';

export interface MetaWatcherOptions {
  lease: Lease;
  lines: { list(): Promise<Line[]> };
  secrets: SecretResolver;
  /** WHATSAPP_ACCESS_TOKEN, for lines without their own token. */
  defaultAccessToken?: string;
  graph: GraphWatchClient;
  arrivals: ArrivalHistory;
  reporter: ProblemReporter;
  /** WHATSAPP_APP_ID; unset: the subscription check (and its Graph call) is skipped. */
  appId?: string;
  /** PUBLIC_BASE_URL; unset: the callback check is skipped. */
  publicBaseUrl?: string;
  intervalMs: number;
  /** The lease's length; it is renewed every third of it. */
  leaseMs: number;
  silenceRule?: SilenceRule;
  registry: Registry;
  logger: Logger;
  /** Lines checked at once within a round. */
  concurrency?: number;
}

/**
 * The one watcher of a deployment: every process runs this loop, and only the lease holder checks
 * the lines, a round every `intervalMs` (the first as soon as it holds the lease). A standby takes
 * over when the holder's lease lapses, or at once when the holder gives it up at shutdown.
 */
export class MetaWatcher {
  private timer?: NodeJS.Timeout;
  private leading = false;
  private nextRoundAt = 0;
  private round?: Promise<void>;
  private stopped = false;
  private readonly leader: Gauge;
  private readonly log: Logger;

  constructor(private readonly options: MetaWatcherOptions) {
    this.log = options.logger.child({ component: 'watch' });
    this.leader = new Gauge({ name: 'wa_ingress_watch_leader', help: '1 while this process holds the watcher lease (one process per deployment)', registers: [options.registry] });
  }

  start(): void {
    const renewMs = Math.max(250, Math.floor(this.options.leaseMs / 3));
    const tick = () => {
      void this.tick().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, renewMs);
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round;
    if (this.leading) await this.options.lease.release().catch((error: unknown) => this.log.warn({ err: error }, 'could not release the watcher lease'));
    this.leading = false;
    this.leader.set(0);
  }

  private async tick(): Promise<void> {
    let holds: boolean;
    try {
      holds = await this.options.lease.acquire();
    } catch (error) {
      this.log.warn({ err: error }, 'could not take or renew the watcher lease');
      holds = false;
    }
    if (holds !== this.leading) this.log.info({ leading: holds }, holds ? 'this process now runs the Meta watcher' : 'the Meta watcher runs elsewhere');
    this.leading = holds;
    this.leader.set(holds ? 1 : 0);
    if (!holds || this.round || this.stopped || Date.now() < this.nextRoundAt) return;
    this.nextRoundAt = Date.now() + this.options.intervalMs;
    this.round = this.runRound()
      .catch((error: unknown) => this.log.error({ err: error }, 'watch round failed'))
      .finally(() => (this.round = undefined));
  }

  /** One round over every active line. */
  async runRound(): Promise<void> {
    const lines = (await this.options.lines.list()).filter((l) => l.active);
    const queue = [...lines];
    const worker = async () => {
      for (let line = queue.shift(); line; line = queue.shift()) {
        await this.checkLine(line).catch((error: unknown) => this.log.warn({ err: error, lineId: line!.lineId }, 'could not check the line'));
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency ?? 4, lines.length) }, worker));
    // Every round says how many lines have a problem (webhook-raised ones included): infra's alarm counts this line.
    const linesWithProblems = await this.options.reporter.refresh(lines.map((l) => l.lineId));
    this.log.info({ event: WATCH_ROUND_EVENT, lines: lines.length, linesWithProblems }, 'watch round done');
  }

  private async checkLine(line: Line): Promise<void> {
    const token = line.accessToken ? await this.options.secrets.resolve(line.accessToken) : this.options.defaultAccessToken;
    const verdict: ProblemVerdict = token ? await this.graphVerdict(line, token) : { checked: [], found: {} };
    if (!token) this.log.debug({ lineId: line.lineId }, 'line has no Graph token (nor WHATSAPP_ACCESS_TOKEN): Meta-side checks skipped');
    const silence = silenceVerdict(await this.options.arrivals.recent(line.lineId), Date.now(), this.options.silenceRule ?? DEFAULT_SILENCE_RULE);
    verdict.checked.push('inbound_silent');
    if (silence.silent) verdict.found.inbound_silent = silenceDetail(silence);
    await this.options.reporter.apply(line.lineId, verdict, 'watch');
  }

  /** At most two Graph calls; the second is not made when the first says the token is refused. */
  private async graphVerdict(line: Line, token: string): Promise<ProblemVerdict> {
    const { appId, publicBaseUrl, graph } = this.options;
    const subscribedApps: GraphAnswer | undefined = appId !== undefined ? await graph.subscribedApps(line.wabaId, token) : undefined;
    const tokenRefused = subscribedApps?.kind === 'error' && deriveProblems({ lineId: line.lineId, subscribedApps }).found.token_rejected !== undefined;
    const phoneNumber = tokenRefused ? undefined : await graph.phoneNumber(line.phoneNumberId, token);
    return deriveProblems({ lineId: line.lineId, appId, publicBaseUrl, subscribedApps, phoneNumber });
  }
}
