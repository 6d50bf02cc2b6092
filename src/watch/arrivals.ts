import { QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { JOURNAL_INDEXES } from '../aws/resources';

/** A line's recent inbound message times, for the silence rule (silence.ts). */
export interface ArrivalHistory {
  recent(lineId: string): Promise<number[]>;
}

/**
 * Read from the journal's line+time index (the records the worker writes anyway): one Query per
 * line per round, newest first, messages only (statuses of our replies say nothing about inbound).
 */
export class JournalArrivalHistory implements ArrivalHistory {
  constructor(private readonly options: { documents: DynamoDBDocumentClient; tableName: string; maxItems?: number }) {}

  async recent(lineId: string): Promise<number[]> {
    const out = await this.options.documents.send(
      new QueryCommand({
        TableName: this.options.tableName,
        IndexName: JOURNAL_INDEXES.byLine,
        KeyConditionExpression: 'lineId = :l',
        FilterExpression: '#kind = :message',
        ExpressionAttributeNames: { '#kind': 'kind' },
        ExpressionAttributeValues: { ':l': lineId, ':message': 'message' },
        ProjectionExpression: 'receivedAt',
        ScanIndexForward: false,
        Limit: this.options.maxItems ?? 100,
      }),
    );
    return (out.Items ?? []).map((i) => Date.parse(String(i.receivedAt))).filter((t) => Number.isFinite(t));
  }
}
