import type { ArchiveObjects, ArchiveObjectRef } from './archive-objects';
import { hourPrefixes, keyStart, type ArchiveRecord } from './archive-record';

/** Where a record sits in the archive's receive order: resume after it. */
export interface ArchiveCursor {
  receivedAt: string;
  key: string;
  index: number;
}

export function formatCursor(c: ArchiveCursor): string {
  return `${c.receivedAt}|${c.key}|${c.index}`;
}

export function parseCursor(text: string): ArchiveCursor | undefined {
  const [receivedAt, key, index] = text.split('|');
  if (!receivedAt || !key || index === undefined || !/^\d+$/.test(index)) return undefined;
  return { receivedAt, key, index: Number(index) };
}

export function compareCursors(a: ArchiveCursor, b: ArchiveCursor): number {
  if (a.receivedAt !== b.receivedAt) return a.receivedAt < b.receivedAt ? -1 : 1;
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  return a.index - b.index;
}

/** A record of the range with its place; `record` undefined: the line is not a record (counted as unreadable). */
export interface RangeItem {
  cursor: ArchiveCursor;
  record?: ArchiveRecord;
}

interface OpenObject {
  key: string;
  items: RangeItem[];
  next: number;
}

/**
 * The archive's records received in [from, to], in receive order across every ingress process's
 * objects: a k-way merge over objects taken in key order (keys sort by their earliest record), an
 * object opened only when the merge reaches its start. Memory: the objects whose time spans
 * overlap (about one per ingress process), never the whole range.
 */
export async function* recordsInRange(objects: ArchiveObjects, from: Date, to: Date, after?: ArchiveCursor): AsyncGenerator<RangeItem> {
  const refs = objectsInOrder(objects, from, to);
  let upcoming = await refs.next();
  const open: OpenObject[] = [];
  const fromIso = from.toISOString();
  const toIso = to.toISOString();
  for (;;) {
    // Open every object that starts before the earliest record already open could be emitted.
    while (!upcoming.done && (open.length === 0 || headTime(open) >= upcoming.value.start)) {
      open.push(await load(objects, upcoming.value.key));
      upcoming = await refs.next();
      pruneEmpty(open);
    }
    if (open.length === 0) return;
    const first = open.reduce((best, o) => (compareCursors(o.items[o.next]!.cursor, best.items[best.next]!.cursor) < 0 ? o : best));
    const item = first.items[first.next++]!;
    pruneEmpty(open);
    if (item.cursor.receivedAt < fromIso || item.cursor.receivedAt > toIso) continue;
    if (after && compareCursors(item.cursor, after) <= 0) continue;
    yield item;
  }
}

async function* objectsInOrder(objects: ArchiveObjects, from: Date, to: Date): AsyncGenerator<ArchiveObjectRef & { start: number }> {
  for (const prefix of hourPrefixes(from, to)) {
    for await (const ref of objects.list(prefix)) {
      const start = keyStart(ref.key);
      if (start !== undefined && start <= to.getTime()) yield { ...ref, start };
    }
  }
}

async function load(objects: ArchiveObjects, key: string): Promise<OpenObject> {
  const start = new Date(keyStart(key) ?? 0).toISOString();
  const items: RangeItem[] = (await objects.read(key)).map((record, index) => ({ record, cursor: { receivedAt: record?.receivedAt ?? start, key, index } }));
  items.sort((a, b) => compareCursors(a.cursor, b.cursor));
  return { key, items, next: 0 };
}

function headTime(open: OpenObject[]): number {
  return Math.min(...open.map((o) => Date.parse(o.items[o.next]!.cursor.receivedAt)));
}

function pruneEmpty(open: OpenObject[]): void {
  for (let i = open.length - 1; i >= 0; i--) if (open[i]!.next >= open[i]!.items.length) open.splice(i, 1);
}
