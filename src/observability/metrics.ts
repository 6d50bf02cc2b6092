import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * One registry per process, created in main and injected: components register their own
 * `wa_ingress_*` metrics on it, so tests can build isolated registries.
 */
export function createRegistry(options: { defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'wa_ingress_' });
  return registry;
}

/**
 * A counter that several components of one process register (two acceptors in the `all` role, the
 * inbound and outbound DLQ parkers): the first creates it, the others reuse it.
 */
export function sharedCounter<L extends string>(registry: Registry, config: { name: string; help: string; labelNames?: readonly L[] }): Counter<L> {
  const existing = registry.getSingleMetric(config.name);
  if (existing) return existing as Counter<L>;
  return new Counter<L>({ ...config, labelNames: config.labelNames ?? [], registers: [registry] });
}
