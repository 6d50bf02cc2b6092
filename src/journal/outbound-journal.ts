import { GetCommand, QueryCommand, type DynamoDBDocumentClient, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { OUTBOUND_BY_CONTACT_INDEX, OUTBOUND_BY_LINE_INDEX } from '../aws/resources';
import { maskPhone, maskWamids } from '../observability/logger';
import { apiStatus, awaitsOperator, contactKey, type OutboundPricing, type OutboundRecord, type OutboundState } from '../outbound/record';
import { mergedPage, type Item, type Page, type PageSource } from './index-pages';
import { shownWamid } from './journey';
import type { OutboundDetail, OutboundSummary } from '../console/ui/contract';

export type { OutboundDetail, OutboundSummary } from '../console/ui/contract';

export const OUTBOUND_STATUS_FILTERS = ['queued', 'sending', 'uncertain', 'sent', 'delivered', 'read', 'failed', 'suppressed'] as const;

export interface OutboundQuery {
  lineId?: string;
  /** The whole recipient number as typed: looked up through the line's contact index. */
  to?: string;
  status?: (typeof OUTBOUND_STATUS_FILTERS)[number];
  limit: number;
  cursor?: string;
}

/** What `sent` counts in a line's last hour: accepted by Meta, whatever happened after. */
const SENT_STATES: OutboundState[] = ['sent', 'delivered', 'read'];

/** What the contact API's `sent` holds: replies accepted by Meta, how many Meta priced billable, and per pricing category. */
export interface SentCounts {
  total: number;
  billable: number;
  /** Replies per `pricing.category` (a reply counts once, under its latest pricing); replies with no pricing yet are not here. */
  byCategory: Record<string, number>;
}

function countSent(counts: SentCounts, status: OutboundState, pricing: OutboundPricing | undefined): void {
  if (!SENT_STATES.includes(status)) return;
  counts.total++;
  if (pricing?.billable) counts.billable++;
  if (pricing?.category) counts.byCategory[pricing.category] = (counts.byCategory[pricing.category] ?? 0) + 1;
}

/** Reads the outbound records (src/outbound) for the console, through their line and contact indexes. */
export class OutboundJournal {
  constructor(private readonly options: { documents: DynamoDBDocumentClient; tableName: string }) {}

  async get(id: string): Promise<OutboundDetail | undefined> {
    const { Item: item } = await this.options.documents.send(new GetCommand({ TableName: this.options.tableName, Key: { pk: id }, ConsistentRead: true }));
    if (!item) return undefined;
    const record = item as OutboundRecord;
    // A wamid is base64 of a protobuf that starts with the phone number: only its tail, as in the logs.
    const journey = (record.journey ?? []).map((s) => ({
      at: s.at,
      step: s.step,
      ...(s.detail ? { detail: maskWamids(s.detail) } : {}),
    }));
    return { ...summary(item), journey, awaitsOperator: awaitsOperator(record) };
  }

  /** Newest first. By `to`: the contact index of the line (or of every line); else the line index (or every line's, merged). */
  async list(query: OutboundQuery, allLineIds: string[]): Promise<Page<OutboundSummary>> {
    const lineIds = query.lineId ? [query.lineId] : allLineIds;
    const sources: PageSource[] = lineIds.map((lineId) =>
      query.to
        ? { id: `to:${lineId}`, input: this.keyQuery(OUTBOUND_BY_CONTACT_INDEX, 'contactKey', contactKey(lineId, query.to), query), hashName: 'contactKey', rangeName: 'createdAt' }
        : { id: `line:${lineId}`, input: this.keyQuery(OUTBOUND_BY_LINE_INDEX, 'lineId', lineId, query), hashName: 'lineId', rangeName: 'createdAt' },
    );
    const page = await mergedPage(this.options.documents, sources, query.cursor, query.limit);
    const items = page.items.map(summary);
    return page.cursor ? { items, cursor: page.cursor } : { items };
  }

  /** A line's replies created in the window: sent (accepted by Meta) and failed, and each one's time for the chart. */
  async activity(lineId: string, since: string, max = 5000): Promise<{ sent: number; failed: number; events: { at: string; outcome: string }[] }> {
    let sent = 0;
    let failed = 0;
    const events: { at: string; outcome: string }[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const out = await this.options.documents.send(
        new QueryCommand({
          TableName: this.options.tableName,
          IndexName: OUTBOUND_BY_LINE_INDEX,
          KeyConditionExpression: 'lineId = :lineId AND createdAt >= :since',
          ExpressionAttributeValues: { ':lineId': lineId, ':since': since },
          ProjectionExpression: 'createdAt, #status',
          ExpressionAttributeNames: { '#status': 'status' },
          ScanIndexForward: false,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of out.Items ?? []) {
        const status = item.status as OutboundState;
        if (SENT_STATES.includes(status)) sent++;
        if (status === 'failed') failed++;
        if (SENT_STATES.includes(status) || status === 'failed') events.push({ at: String(item.createdAt), outcome: status === 'failed' ? 'failed' : 'sent' });
      }
      startKey = events.length < max ? (out.LastEvaluatedKey as Record<string, unknown> | undefined) : undefined;
    } while (startKey);
    return { sent, failed, events };
  }

  /**
   * A contact's replies (looked up under each of its ids: a reply is addressed to the wa_id or the
   * BSUID) created since `since` and accepted by Meta: in all, billable, and per pricing category.
   * Reads only (the byContact index projects every attribute); no write per event.
   */
  async sentToContact(lineId: string, ids: string[], since: string, maxPages = 10): Promise<SentCounts> {
    const counts: SentCounts = { total: 0, billable: 0, byCategory: {} };
    for (const id of new Set(ids)) {
      await this.queryPages(
        {
          IndexName: OUTBOUND_BY_CONTACT_INDEX,
          KeyConditionExpression: 'contactKey = :key AND createdAt >= :since',
          ExpressionAttributeValues: { ':key': contactKey(lineId, id), ':since': since },
          ProjectionExpression: '#status, pricing',
          ExpressionAttributeNames: { '#status': 'status' },
        },
        maxPages,
        (item) => countSent(counts, item.status as OutboundState, item.pricing as OutboundPricing | undefined),
      );
    }
    return counts;
  }

  /** A line's replies created since `since` that Meta priced billable, per pricing category (the console's Overview table). */
  async billable(lineId: string, since: string, maxPages = 20): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    await this.queryPages(
      {
        IndexName: OUTBOUND_BY_LINE_INDEX,
        KeyConditionExpression: 'lineId = :lineId AND createdAt >= :since',
        FilterExpression: 'pricing.billable = :yes',
        ExpressionAttributeValues: { ':lineId': lineId, ':since': since, ':yes': true },
        ProjectionExpression: 'pricing',
      },
      maxPages,
      (item) => {
        const category = (item.pricing as OutboundPricing | undefined)?.category ?? 'unknown';
        counts[category] = (counts[category] ?? 0) + 1;
      },
    );
    return counts;
  }

  /** Replies of a line created within `windowMinutes` and changed since `sinceIso`, with their journeys (the index projects them): the live tail of a process without the sender. */
  async changedSince(lineId: string, sinceIso: string, windowMinutes: number, now: Date = new Date()): Promise<{ id: string; lineId: string; updatedAt: string; journey: { at: string; step: string }[] }[]> {
    const out = await this.options.documents.send(
      new QueryCommand({
        TableName: this.options.tableName,
        IndexName: OUTBOUND_BY_LINE_INDEX,
        KeyConditionExpression: 'lineId = :lineId AND createdAt >= :window',
        FilterExpression: 'updatedAt > :since',
        ExpressionAttributeValues: { ':lineId': lineId, ':window': new Date(now.getTime() - windowMinutes * 60_000).toISOString(), ':since': sinceIso },
        ProjectionExpression: 'pk, lineId, updatedAt, journey',
        ScanIndexForward: false,
        Limit: 200,
      }),
    );
    return (out.Items ?? []).map((i) => ({
      id: String(i.pk),
      lineId: String(i.lineId),
      updatedAt: String(i.updatedAt),
      journey: ((i.journey ?? []) as { at: string; step: string }[]).map((s) => ({ at: s.at, step: s.step })),
    }));
  }

  /** Every item of a Query on this table, page after page, up to `maxPages`. */
  private async queryPages(input: Omit<QueryCommandInput, 'TableName' | 'ExclusiveStartKey'>, maxPages: number, onItem: (item: Record<string, unknown>) => void): Promise<void> {
    let startKey: Record<string, unknown> | undefined;
    let pages = 0;
    do {
      const out = await this.options.documents.send(new QueryCommand({ ...input, TableName: this.options.tableName, ExclusiveStartKey: startKey }));
      for (const item of out.Items ?? []) onItem(item);
      startKey = ++pages < maxPages ? (out.LastEvaluatedKey as Record<string, unknown> | undefined) : undefined;
    } while (startKey);
  }

  private keyQuery(indexName: string, hashName: string, hashValue: string, query: OutboundQuery): QueryCommandInput {
    const names: Record<string, string> = { '#h': hashName };
    const values: Record<string, unknown> = { ':h': hashValue };
    let filter: string | undefined;
    if (query.status) {
      names['#status'] = 'status';
      values[':status'] = query.status;
      filter = '#status = :status';
    }
    return {
      TableName: this.options.tableName,
      IndexName: indexName,
      KeyConditionExpression: '#h = :h',
      ...(filter ? { FilterExpression: filter } : {}),
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    };
  }
}

function summary(item: Item): OutboundSummary {
  const record = item as unknown as OutboundRecord;
  return {
    id: record.id ?? record.pk,
    lineId: record.lineId,
    to: maskPhone(record.to) ?? '',
    type: record.type,
    source: record.source,
    status: apiStatus(record.status),
    ...(record.wamid ? { wamid: shownWamid(record.wamid) } : {}),
    ...(record.error ? { error: record.error } : {}),
    attempts: record.attempts ?? 0,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  };
}
