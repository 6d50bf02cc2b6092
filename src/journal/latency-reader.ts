import { BatchGetCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { JOURNAL_INDEXES, OUTBOUND_BY_LINE_INDEX } from '../aws/resources';
import type { JourneyStep } from './journey';
import { latencyFigures, metaToBirdMs, receivedToReplySentMs, type LatencyFigures } from './latency';

export interface LineLatency {
  metaToBird: LatencyFigures;
  receivedToReplySent: LatencyFigures;
}

/**
 * A line's delivery latency over a window, from the records the pipeline writes anyway (no write
 * of its own): the newest `sampleSize` inbound messages (their Meta timestamp and `delivered`
 * step) and the newest `sampleSize` Flow replies (their inbound receive time and `sent` step).
 * Reads only: one index Query and one BatchGet per 100 inbound samples, one Query for the replies.
 */
export class LatencyReader {
  constructor(
    private readonly options: { documents: DynamoDBDocumentClient; dedupeTable: string; outboundTable?: string; sampleSize?: number },
  ) {}

  async line(lineId: string, since: string): Promise<LineLatency> {
    const [inbound, replies] = await Promise.all([this.inboundSamples(lineId, since), this.replySamples(lineId, since)]);
    return { metaToBird: latencyFigures(inbound), receivedToReplySent: latencyFigures(replies) };
  }

  private async inboundSamples(lineId: string, since: string): Promise<number[]> {
    const { documents, dedupeTable } = this.options;
    const out = await documents.send(
      new QueryCommand({
        TableName: dedupeTable,
        IndexName: JOURNAL_INDEXES.byLine,
        KeyConditionExpression: 'lineId = :l AND receivedAt >= :since',
        FilterExpression: '#kind = :message AND #status = :done',
        ExpressionAttributeNames: { '#kind': 'kind', '#status': 'status' },
        ExpressionAttributeValues: { ':l': lineId, ':since': since, ':message': 'message', ':done': 'COMPLETED' },
        ProjectionExpression: 'pk',
        ScanIndexForward: false,
        Limit: this.options.sampleSize ?? 200,
      }),
    );
    const keys = (out.Items ?? []).map((i) => ({ pk: i.pk as string }));
    const samples: number[] = [];
    for (let i = 0; i < keys.length; i += 100) {
      let pending: Record<string, unknown>[] | undefined = keys.slice(i, i + 100);
      for (let attempt = 0; pending && pending.length > 0 && attempt < 5; attempt++) {
        const got = await documents.send(new BatchGetCommand({ RequestItems: { [dedupeTable]: { Keys: pending, ProjectionExpression: 'metaAt, journey' } } }));
        for (const item of got.Responses?.[dedupeTable] ?? []) {
          const ms = metaToBirdMs(item as { metaAt?: unknown; journey?: JourneyStep[] });
          if (ms !== undefined) samples.push(ms);
        }
        pending = got.UnprocessedKeys?.[dedupeTable]?.Keys as Record<string, unknown>[] | undefined;
      }
    }
    return samples;
  }

  private async replySamples(lineId: string, since: string): Promise<number[]> {
    if (!this.options.outboundTable) return [];
    const out = await this.options.documents.send(
      new QueryCommand({
        TableName: this.options.outboundTable,
        IndexName: OUTBOUND_BY_LINE_INDEX,
        KeyConditionExpression: 'lineId = :l AND createdAt >= :since',
        FilterExpression: 'attribute_exists(inboundReceivedAt)',
        ExpressionAttributeValues: { ':l': lineId, ':since': since },
        ProjectionExpression: 'inboundReceivedAt, journey',
        ScanIndexForward: false,
        Limit: this.options.sampleSize ?? 200,
      }),
    );
    return (out.Items ?? []).map((i) => receivedToReplySentMs(i as { inboundReceivedAt?: unknown; journey?: JourneyStep[] })).filter((ms): ms is number => ms !== undefined);
  }
}
