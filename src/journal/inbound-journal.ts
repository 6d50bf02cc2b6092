import { GetCommand, QueryCommand, type DynamoDBDocumentClient, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { JOURNAL_INDEXES } from '../aws/resources';
import { mergedPage, type Item, type Page, type PageSource } from './index-pages';
import { eventHandle, looksLikeEventHandle, wamidDigest } from '../privacy/pseudonyms';
import { contactHash, displayEvent, inboundOutcome, receivedStep, shownWamid, type InboundOutcome, type JourneyStep } from './journey';
import type { EventDetail, EventSummary } from '../console/ui/contract';

export type { EventDetail, EventSummary } from '../console/ui/contract';

export const EVENT_OUTCOME_FILTERS = ['delivered', 'not_forwarded', 'parked', 'in_progress', 'retrying', 'duplicate'] as const;
export type EventOutcomeFilter = (typeof EVENT_OUTCOME_FILTERS)[number];

export interface EventQuery {
  /** One line; without it (and without wamid/contact) every line given in `lineIds` is merged by time. */
  lineId?: string;
  /** The wamid as typed: it is hashed like the index value. */
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

export type { Page } from './index-pages';

/** A line's last hour, counted from the line+time index. */
export interface LineActivity {
  lastEventAt?: string;
  counts: { delivered: number; duplicate: number; retried: number; parked: number };
  /** For the per-minute chart: each event's receivedAt and outcome. */
  events: { at: string; outcome: string }[];
  /** More than `maxItems` events in the window: the figures cover the newest ones only. */
  truncated: boolean;
}

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

  /** By the event's handle (its record's `pk`). */
  /** The line and contact digest of an event (the console's contact panel): undefined when the event names no contact. */
  async contactOf(handle: string): Promise<{ lineId: string; contactHash: string } | undefined> {
    const { Item: item } = await this.options.documents.send(
      new GetCommand({ TableName: this.options.tableName, Key: { pk: handle }, ProjectionExpression: 'lineId, contactHash' }),
    );
    return typeof item?.lineId === 'string' && typeof item.contactHash === 'string' ? { lineId: item.lineId, contactHash: item.contactHash } : undefined;
  }

  async get(handle: string): Promise<EventDetail | undefined> {
    const { Item: item } = await this.options.documents.send(new GetCommand({ TableName: this.options.tableName, Key: { pk: handle }, ConsistentRead: true }));
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
    const source = (id: string, index: string, hashName: string, hashValue: string): PageSource => ({
      id,
      input: this.keyQuery(index, hashName, hashValue, query),
      hashName,
      rangeName: 'receivedAt',
    });
    let sources: PageSource[];
    if (query.wamid) sources = [source('wamid', JOURNAL_INDEXES.byWamid, 'wamid', wamidDigest(query.wamid))];
    else if (query.contact) sources = [source('contact', JOURNAL_INDEXES.byContact, 'contactHash', contactHash(query.contact))];
    else sources = (query.lineId ? [query.lineId] : allLineIds).map((lineId) => source(`line:${lineId}`, JOURNAL_INDEXES.byLine, 'lineId', lineId));
    const page = await mergedPage(this.options.documents, sources, query.cursor, query.limit);
    // A line filter on a wamid/contact lookup narrows, it does not change the index.
    const items = page.items.filter((i) => typeof i.lineId === 'string' && (!(query.wamid || query.contact) || !query.lineId || i.lineId === query.lineId)).map(summary);
    return page.cursor ? { items, cursor: page.cursor } : { items };
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
  async changedSince(lineId: string, sinceIso: string, windowMinutes: number, now: Date = new Date()): Promise<{ handle: string; updatedAt: string }[]> {
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
    return (out.Items ?? []).map((i) => ({ handle: String(i.pk), updatedAt: String(i.updatedAt) }));
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
        values[':status'] = { delivered: 'COMPLETED', not_forwarded: 'RECORDED', parked: 'PARKED', in_progress: 'INPROGRESS', retrying: 'INPROGRESS' }[query.outcome];
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
    };
  }
}

function summary(item: Item): EventSummary {
  const outcome = inboundOutcome(item as { status?: string; retries?: number; journey?: JourneyStep[] });
  return {
    handle: handleOf(String(item.pk)),
    lineId: String(item.lineId),
    kind: String(item.kind ?? ''),
    type: String(item.type ?? ''),
    outcome,
    receivedAt: String(item.receivedAt),
    updatedAt: typeof item.updatedAt === 'string' ? item.updatedAt : undefined,
    reason: typeof item.parkReason === 'string' ? item.parkReason : undefined,
    contact: typeof item.contact === 'string' ? item.contact : undefined,
    wamid: shownWamid(item.wamid),
    duplicates: Number(item.duplicates ?? 0),
    retries: Number(item.retries ?? 0),
  };
}

/** A record written before keys were stored as handles has its event key as `pk`: the views name it by its handle all the same. */
function handleOf(pk: string): string {
  return looksLikeEventHandle(pk) ? pk : eventHandle(pk);
}
