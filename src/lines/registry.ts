import { Counter, type Registry } from 'prom-client';
import type { Line } from './line';
import type { LineStore } from './store';

/** Read side used on the hot paths: lookups by lineId or phoneNumberId through a short-TTL cache with negative caching. */
export interface LineRegistry {
  byId(lineId: string): Promise<Line | undefined>;
  byPhoneNumberId(phoneNumberId: string): Promise<Line | undefined>;
  /** The active lines of a WABA, for account-level events that name no phone number. */
  activeByWabaId(wabaId: string): Promise<Line[]>;
  /** Forget cached answers, e.g. after the operator registered a line. */
  invalidate(): void;
}

interface CacheEntry<T> {
  value: Promise<T | undefined>;
  expiresAt: number;
}

// A Map with expiry is all this needs; an LRU library would add a dependency for one bounded map.
export class CachedLineRegistry implements LineRegistry {
  private readonly cache = new Map<string, CacheEntry<unknown>>();
  private readonly clock: () => number;
  private readonly lookups: Counter<'index' | 'result'>;
  private static readonly MAX_ENTRIES = 10_000;

  constructor(
    private readonly options: {
      store: LineStore;
      ttlMs: number;
      /** Unknown lines are cached for less time, so a new registration is seen quickly. */
      negativeTtlMs?: number;
      registry?: Registry;
      clock?: () => number;
    },
  ) {
    this.clock = options.clock ?? Date.now;
    this.lookups = new Counter({
      name: 'wa_ingress_line_store_lookups_total',
      help: 'Line lookups that reached the lines table (cache misses), by index and result',
      labelNames: ['index', 'result'],
      registers: options.registry ? [options.registry] : [],
    });
  }

  byId(lineId: string): Promise<Line | undefined> {
    return this.cached(`id#${lineId}`, 'lineId', () => this.options.store.getById(lineId));
  }

  byPhoneNumberId(phoneNumberId: string): Promise<Line | undefined> {
    return this.cached(`pn#${phoneNumberId}`, 'phoneNumberId', () => this.options.store.getByPhoneNumberId(phoneNumberId));
  }

  activeByWabaId(wabaId: string): Promise<Line[]> {
    return this.cached(`waba#${wabaId}`, 'wabaId', async () => {
      const active = (await this.options.store.listByWabaId(wabaId)).filter((l) => l.active);
      return active.length > 0 ? active : undefined;
    }).then((lines) => lines ?? []);
  }

  invalidate(): void {
    this.cache.clear();
  }

  /** `undefined` from `load` means "no such line": cached for the shorter negative TTL. */
  private cached<T>(key: string, index: 'lineId' | 'phoneNumberId' | 'wabaId', load: () => Promise<T | undefined>): Promise<T | undefined> {
    const now = this.clock();
    const hit = this.cache.get(key) as CacheEntry<T> | undefined;
    if (hit && hit.expiresAt > now) return hit.value;
    if (this.cache.size >= CachedLineRegistry.MAX_ENTRIES) this.cache.clear();
    const value = load();
    const entry: CacheEntry<T> = { value, expiresAt: now + this.options.ttlMs };
    this.cache.set(key, entry);
    value.then(
      (found) => {
        this.lookups.inc({ index, result: found ? 'found' : 'missing' });
        if (!found) entry.expiresAt = now + (this.options.negativeTtlMs ?? Math.min(this.options.ttlMs, 5000));
      },
      () => {
        this.lookups.inc({ index, result: 'error' });
        // Errors are not cached: the next request tries the table again.
        if (this.cache.get(key) === entry) this.cache.delete(key);
      },
    );
    return value;
  }
}
