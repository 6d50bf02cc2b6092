import { GetCommand, QueryCommand, type DynamoDBDocumentClient, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { JOURNAL_INDEXES } from '../aws/resources';
import { InvalidQueryError } from './query-error';
import { contactHash, displayEvent, inboundOutcome, receivedStep, maskWamid, type InboundOutcome, type JourneyStep } from './journey';

/** One row of the events list: no message text, the contact masked. */
export interface EventSummary {
  key: string;
  lineId: string;
  kind: string;
  type: string;
  outcome: InboundOutcome;
  receivedAt: string;
  updatedAt?: string;
  reason?: string;
  contact?: string;
  wamid?: string;
  duplicates: number;
  retries: number;
}

/** The detail view: the journey and the normalised event (text included). */
export interface EventDetail extends EventSummary {
  status: string;
  attempts?: number;
  journey: JourneyStep[];
  event?: unknown;
}

export const EVENT_OUTCOME_FILTERS = ['delivered', 'parked', 'in_progress', 'retrying', 'duplicate'] as const;
export type EventOutcomeFilter = (typeof EVENT_OUTCOME_FILTERS)[number];

export interface EventQuery {
  /** One line; without it (and without wamid/contact) every line given in `lineIds` is merged by time. */
  lineId?: string;
  wamid?: string;
  /** The whole number or user id as typed: it is hashed like the index value. */
  contact?: string;
  kind?: string;
  outcome?: EventOutcomeFilter;
  /** ISO time: only events received at or after it. */
  since?: string;
  limit: number;
  cursor?: string;
}

export interface Page<T> {
  items: T[];
  cursor?: string;
}

/** A line's last hour, counted from the line+time index. */
export interface LineActivity {
  lastEventAt?: string;
  counts: { delivered: number; duplicate: number; retried: number; parked: number };
  /** For the per-minute chart: each event's receivedAt and outcome. */
  events: { at: string; outcome: string }[];
  /** More than `maxItems` events in the window: the figures cover the newest ones only. */
  truncated: boolean;
}

type Item = Record<string, unknown>;
type StartKey = Record<string, unknown>;

/** Reads the journal from the dedupe records through their indexes. Never scans. */
export class InboundJournal {
  constructor(
    private readonly options: {
      documents: DynamoDBDocumentClient;
      tableName: string;
      /** Events of the last hour read per line for the overview; past it the figures say `truncated`. */
      maxActivityItems?: number;
    },
  ) {}

  async get(key: string): Promise<EventDetail | undefined> {
    const { Item: item } = await this.options.documents.send(new GetCommand({ TableName: this.options.tableName, Key: { pk: key }, ConsistentRead: true }));
    if (!item || typeof item.lineId !== 'string') return undefined;
    let event: unknown;
    try {
      event = typeof item.event === 'string' ? JSON.parse(item.event) : undefined;
    } catch {
      event = undefined;
    }
    const stored = Array.isArray(item.journey) ? (item.journey as JourneyStep[]) : [];
    const received = receivedStep(item);
    return {
      ...summary(item),
      status: String(item.status ?? ''),
      attempts: typeof item.attempts === 'number' ? item.attempts : undefined,
      // In time order: a step noted from outside the pipeline (a redrive) may land after later ones.
      journey: [...(received ? [received] : []), ...stored].sort((a, b) => a.at.localeCompare(b.at)),
      event: displayEvent(event),
    };
  }

  /**
   * One page of events, newest first. By wamid or contact: that index. By line: the line+time
   * index. Neither: every line in `allLineIds`, merged by time, the cursor holding each line's place.
   */
  async list(query: EventQuery, allLineIds: string[]): Promise<Page<EventSummary>> {
    const cursor = decodeCursor(query.cursor);
    let sources: { id: string; input: QueryCommandInput }[];
    if (query.wamid) sources = [{ id: 'wamid', input: this.keyQuery(JOURNAL_INDEXES.byWamid, 'wamid', query.wamid, query) }];
    else if (query.contact) sources = [{ id: 'contact', input: this.keyQuery(JOURNAL_INDEXES.byContact, 'contactHash', contactHash(query.contact), query) }];
    else {
      const lineIds = query.lineId ? [query.lineId] : allLineIds;
      sources = lineIds.map((lineId) => ({ id: `line:${lineId}`, input: this.keyQuery(JOURNAL_INDEXES.byLine, 'lineId', lineId, query) }));
    }
    // A line filter on a wamid/contact lookup narrows, it does not change the index.
    const narrow = (query.wamid || query.contact) && query.lineId ? (s: EventSummary) => s.lineId === query.lineId : () => true;
    return this.merged(sources, cursor, query.limit, narrow);
  }

  /** The last hour of one line: counts by outcome, and each event's time for the chart. */
  async activity(lineId: string, now: Date = new Date(), windowMinutes = 60): Promise<LineActivity> {
    const since = new Date(now.getTime() - windowMinutes * 60_000).toISOString();
    const max = this.options.maxActivityItems ?? 5000;
    const counts = { delivered: 0, duplicate: 0, retried: 0, parked: 0 };
    const events: LineActivity['events'] = [];
    let startKey: StartKey | undefined;
    let truncated = false;
    let lastEventAt: string | undefined;
    do {
      const out = await this.options.documents.send(
        new QueryCommand({
          TableName: this.options.tableName,
          IndexName: JOURNAL_INDEXES.byLine,
          KeyConditionExpression: 'lineId = :lineId AND receivedAt >= :since',
          ExpressionAttributeValues: { ':lineId': lineId, ':since': since },
          ProjectionExpression: 'receivedAt, #status, retries, duplicates',
          ExpressionAttributeNames: { '#status': 'status' },
          ScanIndexForward: false,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of out.Items ?? []) {
        if (events.length >= max) {
          truncated = true;
          break;
        }
        const outcome = inboundOutcome(item);
        lastEventAt ??= String(item.receivedAt);
        if (outcome === 'delivered') counts.delivered++;
        if (outcome === 'parked') counts.parked++;
        counts.duplicate += Number(item.duplicates ?? 0);
        counts.retried += Number(item.retries ?? 0);
        events.push({ at: String(item.receivedAt), outcome });
      }
      startKey = truncated ? undefined : (out.LastEvaluatedKey as StartKey | undefined);
    } while (startKey);
    if (!lastEventAt) {
      const out = await this.options.documents.send(
        new QueryCommand({
          TableName: this.options.tableName,
          IndexName: JOURNAL_INDEXES.byLine,
          KeyConditionExpression: 'lineId = :lineId',
          ExpressionAttributeValues: { ':lineId': lineId },
          ProjectionExpression: 'receivedAt',
          ScanIndexForward: false,
          Limit: 1,
        }),
      );
      lastEventAt = out.Items?.[0]?.receivedAt as string | undefined;
    }
    return { lastEventAt, counts, events, truncated };
  }

  /** Records of a line changed since `sinceIso` (received within `windowMinutes`): the SSE poller's view of other processes. */
  async changedSince(lineId: string, sinceIso: string, windowMinutes: number, now: Date = new Date()): Promise<{ key: string; updatedAt: string }[]> {
    const out = await this.options.documents.send(
      new QueryCommand({
        TableName: this.options.tableName,
        IndexName: JOURNAL_INDEXES.byLine,
        KeyConditionExpression: 'lineId = :lineId AND receivedAt >= :window',
        FilterExpression: 'updatedAt > :since',
        ExpressionAttributeValues: { ':lineId': lineId, ':window': new Date(now.getTime() - windowMinutes * 60_000).toISOString(), ':since': sinceIso },
        ProjectionExpression: 'pk, updatedAt',
        ScanIndexForward: false,
        Limit: 200,
      }),
    );
    return (out.Items ?? []).map((i) => ({ key: String(i.pk), updatedAt: String(i.updatedAt) }));
  }

  private keyQuery(indexName: string, hashName: string, hashValue: string, query: EventQuery): QueryCommandInput {
    const names: Record<string, string> = { '#h': hashName };
    const values: Record<string, unknown> = { ':h': hashValue };
    let condition = '#h = :h';
    if (query.since) {
      condition += ' AND receivedAt >= :since';
      values[':since'] = query.since;
    }
    const filters: string[] = [];
    if (query.kind) {
      filters.push('#kind = :kind');
      names['#kind'] = 'kind';
      values[':kind'] = query.kind;
    }
    if (query.outcome) {
      if (query.outcome === 'duplicate') {
        filters.push('duplicates > :zero');
        values[':zero'] = 0;
      } else {
        names['#status'] = 'status';
        filters.push('#status = :status');
        values[':status'] = { delivered: 'COMPLETED', parked: 'PARKED', in_progress: 'INPROGRESS', retrying: 'INPROGRESS' }[query.outcome];
        if (query.outcome === 'retrying') filters.push('retries > :zero');
        if (query.outcome === 'retrying') values[':zero'] = 0;
      }
    }
    return {
      TableName: this.options.tableName,
      IndexName: indexName,
      KeyConditionExpression: condition,
      ...(filters.length > 0 ? { FilterExpression: filters.join(' AND ') } : {}),
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
      ScanIndexForward: false,
      Limit: query.limit,
    };
  }

  /**
   * Newest-first merge of several index queries. Each source reads up to `limit` past its place;
   * the page takes the newest `limit`; a source's new place is the last item the page took from
   * it (or where it was), and a source with nothing left is dropped from the cursor.
   */
  private async merged(
    sources: { id: string; input: QueryCommandInput }[],
    cursor: Record<string, StartKey | null> | undefined,
    limit: number,
    keep: (s: EventSummary) => boolean,
  ): Promise<Page<EventSummary>> {
    const active = sources.filter((s) => !cursor || cursor[s.id] !== undefined);
    const read = await Promise.all(
      active.map(async (source) => {
        const out = await this.options.documents.send(
          new QueryCommand({ ...source.input, ExclusiveStartKey: cursor?.[source.id] ?? undefined }),
        );
        const items = (out.Items ?? []).filter((i) => typeof i.lineId === 'string');
        return { source, items, more: out.LastEvaluatedKey as StartKey | undefined };
      }),
    );
    const all = read.flatMap((r) => r.items.map((item) => ({ id: r.source.id, item })));
    all.sort((a, b) => String(b.item.receivedAt).localeCompare(String(a.item.receivedAt)));
    const taken = all.slice(0, limit);
    const next: Record<string, StartKey | null> = {};
    for (const r of read) {
      const mine = taken.filter((t) => t.id === r.source.id);
      const last = mine.at(-1)?.item;
      if (mine.length === r.items.length) {
        if (r.more) next[r.source.id] = r.more;
      } else {
        next[r.source.id] = last ? indexKey(r.source.input, last) : (cursor?.[r.source.id] ?? null);
      }
    }
    const items = taken.map((t) => summary(t.item)).filter(keep);
    return Object.keys(next).length > 0 ? { items, cursor: encodeCursor(next) } : { items };
  }
}

/** The ExclusiveStartKey of an index item: the table key and the index key. */
function indexKey(input: QueryCommandInput, item: Item): StartKey {
  const hashName = input.ExpressionAttributeNames?.['#h'] ?? 'lineId';
  return { pk: item.pk, [hashName]: item[hashName], receivedAt: item.receivedAt };
}

function summary(item: Item): EventSummary {
  const outcome = inboundOutcome(item as { status?: string; retries?: number; journey?: JourneyStep[] });
  return {
    key: String(item.pk),
    lineId: String(item.lineId),
    kind: String(item.kind ?? ''),
    type: String(item.type ?? ''),
    outcome,
    receivedAt: String(item.receivedAt),
    updatedAt: typeof item.updatedAt === 'string' ? item.updatedAt : undefined,
    reason: typeof item.parkReason === 'string' ? item.parkReason : undefined,
    contact: typeof item.contact === 'string' ? item.contact : undefined,
    wamid: maskWamid(typeof item.wamid === 'string' ? item.wamid : undefined),
    duplicates: Number(item.duplicates ?? 0),
    retries: Number(item.retries ?? 0),
  };
}

export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | undefined): Record<string, StartKey | null> | undefined {
  if (!cursor) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, StartKey | null>;
  } catch {
    // fall through
  }
  throw new InvalidQueryError('cursor', 'not a cursor this API returned');
}
