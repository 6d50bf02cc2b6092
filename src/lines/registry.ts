import { Counter, type Registry } from 'prom-client';
import { PermanentError } from '../errors';
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

/**
 * A Map kept in least-recently-used order (a hit moves its entry to the end; the first entry goes
 * when the map is full), with expiry: all this needs, where an LRU library would add a dependency.
 * Misses ("no such line") and invalid items (`line_invalid`) are cached for the negative TTL, so an
 * unknown or broken id costs at most one table read per id per negative TTL.
 */
export class CachedLineRegistry implements LineRegistry {
  private readonly cache = new Map<string, CacheEntry<unknown>>();
  private readonly clock: () => number;
  private readonly lookups: Counter<'index' | 'result'>;
  private readonly maxEntries: number;

  constructor(
    private readonly options: {
      store: LineStore;
      ttlMs: number;
      /** Unknown lines are cached for less time, so a new registration is seen quickly. */
      negativeTtlMs?: number;
      /** Entries kept before the least recently used one is evicted; default 10,000. */
      maxEntries?: number;
      registry?: Registry;
      clock?: () => number;
    },
  ) {
    this.clock = options.clock ?? Date.now;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.lookups = new Counter({
      name: 'wa_ingress_line_store_lookups_total',
      help: 'Line lookups that reached the lines table (cache misses), by index and result (found, missing, invalid, error)',
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
    if (hit) this.cache.delete(key); // re-inserted below (a hit) or replaced (expired): either way, now the most recent
    if (hit && hit.expiresAt > now) {
      this.cache.set(key, hit);
      return hit.value;
    }
    while (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value as string);
    const value = load();
    const entry: CacheEntry<T> = { value, expiresAt: now + this.options.ttlMs };
    this.cache.set(key, entry);
    const negativeUntil = () => now + (this.options.negativeTtlMs ?? Math.min(this.options.ttlMs, 5000));
    value.then(
      (found) => {
        this.lookups.inc({ index, result: found ? 'found' : 'missing' });
        if (!found) entry.expiresAt = negativeUntil();
      },
      (error: unknown) => {
        // A broken item stays broken until someone fixes it: remember that like a miss.
        if (error instanceof PermanentError) {
          this.lookups.inc({ index, result: 'invalid' });
          entry.expiresAt = negativeUntil();
          return;
        }
        this.lookups.inc({ index, result: 'error' });
        // Other errors are not cached: the next request tries the table again.
        if (this.cache.get(key) === entry) this.cache.delete(key);
      },
    );
    return value;
  }
}
