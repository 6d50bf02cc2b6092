import { QueryCommand, type DynamoDBDocumentClient, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { InvalidQueryError } from './query-error';
import type { Page } from '../console/ui/contract';

export type StartKey = Record<string, unknown>;
export type Item = Record<string, unknown>;

export type { Page } from '../console/ui/contract';

/** One index query the page reads from; `hashName`/`rangeName` make an item's ExclusiveStartKey. */
export interface PageSource {
  id: string;
  input: QueryCommandInput;
  hashName: string;
  rangeName: string;
}

/**
 * Newest-first merge of several index queries (one per line, or one lookup). Each source reads up
 * to `limit` past its place; the page takes the newest `limit`; a source's new place is the last
 * item the page took from it (or where it was), and a source with nothing left leaves the cursor.
 */
export async function mergedPage(
  documents: DynamoDBDocumentClient,
  sources: PageSource[],
  cursorText: string | undefined,
  limit: number,
): Promise<Page<Item>> {
  const cursor = decodeCursor(cursorText);
  const active = sources.filter((s) => !cursor || cursor[s.id] !== undefined);
  const read = await Promise.all(
    active.map(async (source) => {
      const out = await documents.send(new QueryCommand({ ...source.input, Limit: limit, ScanIndexForward: false, ExclusiveStartKey: cursor?.[source.id] ?? undefined }));
      return { source, items: out.Items ?? [], more: out.LastEvaluatedKey as StartKey | undefined };
    }),
  );
  const all = read.flatMap((r) => r.items.map((item) => ({ source: r.source, item })));
  all.sort((a, b) => String(b.item[b.source.rangeName]).localeCompare(String(a.item[a.source.rangeName])));
  const taken = all.slice(0, limit);
  const next: Record<string, StartKey | null> = {};
  for (const r of read) {
    const mine = taken.filter((t) => t.source === r.source);
    const last = mine.at(-1)?.item;
    if (mine.length === r.items.length) {
      if (r.more) next[r.source.id] = r.more;
    } else {
      next[r.source.id] = last ? { pk: last.pk, [r.source.hashName]: last[r.source.hashName], [r.source.rangeName]: last[r.source.rangeName] } : (cursor?.[r.source.id] ?? null);
    }
  }
  const items = taken.map((t) => t.item);
  return Object.keys(next).length > 0 ? { items, cursor: Buffer.from(JSON.stringify(next), 'utf8').toString('base64url') } : { items };
}

function decodeCursor(cursor: string | undefined): Record<string, StartKey | null> | undefined {
  if (!cursor) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, StartKey | null>;
  } catch {
    // fall through
  }
  throw new InvalidQueryError('cursor', 'not a cursor this API returned');
}
