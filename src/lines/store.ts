import { GetCommand, PutCommand, QueryCommand, ScanCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { LINES_BY_PHONE_NUMBER_INDEX, LINES_BY_WABA_INDEX } from '../aws/resources';
import { PermanentError } from '../errors';
import { lineSchema, type Line } from './line';

/**
 * A stored item that is not a valid line (edited by hand, or written by an older version) is
 * PermanentError('line_invalid'): its events are parked with that reason at once, instead of
 * retrying for hours. The message names the fields, never their values (they may hold secrets).
 */
export function parseStoredLine(item: Record<string, unknown>): Line {
  const parsed = lineSchema.safeParse(item);
  if (parsed.success) return parsed.data;
  const fields = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(item)'}: ${issue.message}`).join('; ');
  const lineId = typeof item.lineId === 'string' ? item.lineId : '(no lineId)';
  throw new PermanentError('line_invalid', `Line ${lineId} in the lines table is not valid (${fields}); fix it with the lines CLI`);
}

/** Persistence of lines. Lookups by lineId and by phoneNumberId never scan; only `list` does (operator CLI). */
export interface LineStore {
  getById(lineId: string): Promise<Line | undefined>;
  getByPhoneNumberId(phoneNumberId: string): Promise<Line | undefined>;
  /** Every line of a WhatsApp Business Account (index query; a WABA has a handful of numbers). */
  listByWabaId(wabaId: string): Promise<Line[]>;
  put(line: Line): Promise<void>;
  list(): Promise<Line[]>;
  setActive(lineId: string, active: boolean): Promise<boolean>;
}

export class DynamoLineStore implements LineStore {
  constructor(private readonly options: { documents: DynamoDBDocumentClient; tableName: string }) {}

  async getById(lineId: string): Promise<Line | undefined> {
    const out = await this.options.documents.send(new GetCommand({ TableName: this.options.tableName, Key: { lineId } }));
    return out.Item ? parseStoredLine(out.Item) : undefined;
  }

  async getByPhoneNumberId(phoneNumberId: string): Promise<Line | undefined> {
    const out = await this.options.documents.send(
      new QueryCommand({
        TableName: this.options.tableName,
        IndexName: LINES_BY_PHONE_NUMBER_INDEX,
        KeyConditionExpression: 'phoneNumberId = :p',
        ExpressionAttributeValues: { ':p': phoneNumberId },
        Limit: 2,
      }),
    );
    const items = (out.Items ?? []).map(parseStoredLine);
    // Two lines on one number is an operator mistake; prefer the active one so traffic keeps flowing.
    return items.find((l) => l.active) ?? items[0];
  }

  async listByWabaId(wabaId: string): Promise<Line[]> {
    return this.readAllPages((startKey) =>
      this.options.documents.send(
        new QueryCommand({
          TableName: this.options.tableName,
          IndexName: LINES_BY_WABA_INDEX,
          KeyConditionExpression: 'wabaId = :w',
          ExpressionAttributeValues: { ':w': wabaId },
          ExclusiveStartKey: startKey,
        }),
      ),
    );
  }

  async put(line: Line): Promise<void> {
    await this.options.documents.send(
      new PutCommand({ TableName: this.options.tableName, Item: { ...line, updatedAt: new Date().toISOString() } }),
    );
  }

  async list(): Promise<Line[]> {
    return this.readAllPages((startKey) => this.options.documents.send(new ScanCommand({ TableName: this.options.tableName, ExclusiveStartKey: startKey })));
  }

  /** Every page of a Query or Scan, parsed and sorted by lineId. */
  private async readAllPages(
    page: (startKey: Record<string, unknown> | undefined) => Promise<{ Items?: Record<string, unknown>[]; LastEvaluatedKey?: Record<string, unknown> }>,
  ): Promise<Line[]> {
    const lines: Line[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const out = await page(startKey);
      for (const item of out.Items ?? []) lines.push(parseStoredLine(item));
      startKey = out.LastEvaluatedKey;
    } while (startKey);
    return lines.sort((a, b) => a.lineId.localeCompare(b.lineId));
  }

  async setActive(lineId: string, active: boolean): Promise<boolean> {
    try {
      await this.options.documents.send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: { lineId },
          UpdateExpression: 'SET active = :a, updatedAt = :u',
          ConditionExpression: 'attribute_exists(lineId)',
          ExpressionAttributeValues: { ':a': active, ':u': new Date().toISOString() },
        }),
      );
      return true;
    } catch (error) {
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }
}
