import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Registry } from 'prom-client';
import type { AwsClients } from '../aws/clients';
import type { Config } from '../config/config';
import type { Line } from '../lines/line';
import type { SecretResolver } from '../lines/secrets';
import type { Logger } from '../observability/logger';
import { AccountEventProblems, type AccountEventSink } from './account-events';
import { JournalArrivalHistory } from './arrivals';
import { HttpGraphWatchClient } from './graph-watch-client';
import { ProblemReporter } from './problem-reporter';
import { DynamoProblemStore, type ProblemStore } from './problem-store';
import { DynamoLease } from './watch-lease';
import { MetaWatcher } from './watcher';

export { LINE_PROBLEMS, PROBLEM_ADVICE, type ActiveProblem, type LineProblem } from './problems';
export { DynamoProblemStore, type ProblemStore } from './problem-store';

export interface RunningWatch {
  /** For the worker: account webhooks update the problems at once. */
  accountEvents: AccountEventSink;
  store: ProblemStore;
  stop(): Promise<void>;
}

/**
 * Every serving process shows the stored problems in its gauge (refreshed each round's interval,
 * at most every minute); processes that `compete` (worker and all roles) also run for the watcher
 * lease, and the holder checks the lines.
 */
export function startWatch(deps: {
  config: Config;
  clients: AwsClients;
  lines: { list(): Promise<Line[]> };
  secrets: SecretResolver;
  registry: Registry;
  logger: Logger;
  compete: boolean;
}): RunningWatch {
  const { config, clients, registry } = deps;
  const logger = deps.logger.child({ component: 'watch' });
  const store = new DynamoProblemStore({ documents: clients.documents, tableName: config.dynamodb.dedupeTable });
  const reporter = new ProblemReporter({ store, registry, logger });
  const watcher =
    deps.compete && config.watch.intervalMs > 0
      ? new MetaWatcher({
          lease: new DynamoLease({ documents: clients.documents, tableName: config.dynamodb.dedupeTable, holder: `${hostname()}:${process.pid}:${randomUUID()}`, leaseMs: config.watch.leaseMs }),
          lines: deps.lines,
          secrets: deps.secrets,
          defaultAccessToken: config.whatsapp.accessToken,
          graph: new HttpGraphWatchClient({ graphApiBaseUrl: config.worker.graphApiBaseUrl, graphApiVersion: config.worker.graphApiVersion, timeoutMs: 10_000 }),
          arrivals: new JournalArrivalHistory({ documents: clients.documents, tableName: config.dynamodb.dedupeTable }),
          reporter,
          appId: config.watch.appId,
          publicBaseUrl: config.ingress.publicBaseUrl,
          intervalMs: config.watch.intervalMs,
          leaseMs: config.watch.leaseMs,
          registry,
          logger,
        })
      : undefined;
  watcher?.start();

  const refresh = async () => reporter.refresh((await deps.lines.list()).filter((l) => l.active).map((l) => l.lineId));
  const refreshMs = Math.min(config.watch.intervalMs || 60_000, 60_000);
  const refresher = setInterval(() => void refresh().catch((error: unknown) => logger.debug({ err: error }, 'could not refresh the line problem gauge')), refreshMs);
  refresher.unref();
  void refresh().catch(() => undefined);

  return {
    accountEvents: new AccountEventProblems(reporter),
    store,
    async stop() {
      clearInterval(refresher);
      await watcher?.stop();
    },
  };
}
