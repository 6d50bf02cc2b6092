import { randomUUID } from 'node:crypto';
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { RetryableError } from '../../errors';
import type { TurnPolicy } from '../../lines/line';
import { contactDigest } from '../../privacy/pseudonyms';

/** One buffered message: its event key, when it was buffered, and its FlowBody as JSON. */
export interface BufferedMessage {
  key: string;
  at: number;
  body: string;
}

/** What a conversation's turn item holds (one item per line × contact, in the dedupe table). */
export interface TurnBufferState {
  pk: string;
  lineId: string;
  /** The conversation's FIFO MessageGroupId, for the turn message. */
  groupId: string;
  policy: TurnPolicy;
  /** The turn in progress: absent between turns. */
  turnId?: string;
  firstAt?: number;
  lastAt?: number;
  count: number;
  items: BufferedMessage[];
  /** A turn cut but not yet confirmed on the queue: it goes out before anything else. */
  sealed?: { turnId: string; body: string };
  /** How many message keys the item remembers (see `append`). */
  seenCount: number;
}

export interface AppendInput {
  pk: string;
  lineId: string;
  groupId: string;
  policy: TurnPolicy;
  message: BufferedMessage;
}

/**
 * A conversation's turn item: `turnbuf#<lineId>#<contact digest>`. The digest keeps the number out
 * of the key (and out of the timer messages that carry it), and lets an erasure, which keeps only
 * the digest, find the item.
 */
export function turnBufferKey(lineId: string, contact: string): string {
  return turnBufferKeyOfDigest(lineId, contactDigest(contact));
}

export function turnBufferKeyOfDigest(lineId: string, digest: string): string {
  return `turnbuf#${lineId}#${digest}`;
}

/** Keys remembered per conversation before the oldest turns' keys are let go (at a cut). */
const MAX_SEEN_KEYS = 1000;

/**
 * The durable turn buffer: one DynamoDB item per conversation (`turnbuf#<lineId>#<contact digest>`) in the
 * dedupe table, written only with conditional single-item updates (no transactions, which dynalite
 * lacks). Appending is idempotent per message key: the item remembers every key it took (`seen`), so
 * a message retried after a crash, even after its turn went out, is never buffered twice. Cutting a
 * turn moves its messages into `sealed` in the same write that empties the buffer, so a crash between
 * the cut and the send leaves the turn in the item, where the next flush finds it.
 */
export class DynamoTurnStore {
  constructor(
    private readonly options: { documents: DynamoDBDocumentClient; tableName: string; ttlDays: number; now?: () => number },
  ) {}

  private get now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** Adds the message to the conversation's turn in progress (starting one if none). False: it was buffered before. */
  async append(input: AppendInput): Promise<{ appended: boolean; state: TurnBufferState }> {
    try {
      const out = await this.options.documents.send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: { pk: input.pk },
          UpdateExpression:
            'SET #items = list_append(if_not_exists(#items, :empty), :item), turnId = if_not_exists(turnId, :turnId), ' +
            'firstAt = if_not_exists(firstAt, :now), lastAt = :now, #count = if_not_exists(#count, :zero) + :one, ' +
            'lineId = :lineId, groupId = :groupId, policy = :policy, expiresAt = :expiresAt ADD seen :key',
          ConditionExpression: 'NOT contains(seen, :keyValue)',
          ExpressionAttributeNames: { '#items': 'items', '#count': 'count' },
          ExpressionAttributeValues: {
            ':empty': [],
            ':item': [input.message],
            ':turnId': randomUUID(),
            ':now': input.message.at,
            ':zero': 0,
            ':one': 1,
            ':lineId': input.lineId,
            ':groupId': input.groupId,
            ':policy': input.policy,
            ':expiresAt': this.expiresAt(),
            ':key': new Set([input.message.key]),
            ':keyValue': input.message.key,
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { appended: true, state: toState(out.Attributes!) };
    } catch (error) {
      if (!isConditionFailure(error)) throw unavailable(error);
    }
    const state = await this.read(input.pk);
    if (!state) throw new RetryableError('turn_buffer_unavailable', 'The turn item vanished after refusing a known key');
    return { appended: false, state };
  }

  async read(pk: string): Promise<TurnBufferState | undefined> {
    try {
      const out = await this.options.documents.send(new GetCommand({ TableName: this.options.tableName, Key: { pk }, ConsistentRead: true }));
      return out.Item ? toState(out.Item) : undefined;
    } catch (error) {
      throw unavailable(error);
    }
  }

  /**
   * Cut the turn `state` shows: its messages become `sealed` (with `body`, the turn message) and the
   * buffer starts empty, in one conditional write. False when the item moved on since it was read (a
   * message appended, another flush cut it): read again.
   */
  async seal(state: TurnBufferState, body: string): Promise<boolean> {
    if (!state.turnId) return false;
    // Forget the keys of older turns now and then; a retry of those messages comes long after.
    const keepSeen = state.seenCount > MAX_SEEN_KEYS ? ', seen = :seen' : '';
    try {
      await this.options.documents.send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: { pk: state.pk },
          UpdateExpression: `SET sealed = :sealed, #count = :zero, expiresAt = :expiresAt${keepSeen} REMOVE #items, turnId, firstAt, lastAt`,
          ConditionExpression: 'turnId = :turnId AND #count = :count AND attribute_not_exists(sealed)',
          ExpressionAttributeNames: { '#items': 'items', '#count': 'count' },
          ExpressionAttributeValues: {
            ':sealed': { turnId: state.turnId, body },
            ':zero': 0,
            ':expiresAt': this.expiresAt(),
            ':turnId': state.turnId,
            ':count': state.count,
            ...(keepSeen ? { ':seen': new Set(state.items.map((m) => m.key)) } : {}),
          },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw unavailable(error);
    }
  }

  /** The sealed turn is on the queue: forget it. */
  async unseal(pk: string, turnId: string): Promise<void> {
    try {
      await this.options.documents.send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: { pk },
          UpdateExpression: 'REMOVE sealed',
          ConditionExpression: 'sealed.turnId = :turnId',
          ExpressionAttributeValues: { ':turnId': turnId },
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw unavailable(error);
    }
  }

  private expiresAt(): number {
    return Math.floor(this.now / 1000) + this.options.ttlDays * 86_400;
  }
}

function toState(item: Record<string, unknown>): TurnBufferState {
  const seen = item.seen;
  return {
    pk: String(item.pk),
    lineId: String(item.lineId),
    groupId: String(item.groupId),
    policy: item.policy as TurnPolicy,
    turnId: typeof item.turnId === 'string' ? item.turnId : undefined,
    firstAt: typeof item.firstAt === 'number' ? item.firstAt : undefined,
    lastAt: typeof item.lastAt === 'number' ? item.lastAt : undefined,
    count: typeof item.count === 'number' ? item.count : 0,
    items: Array.isArray(item.items) ? (item.items as BufferedMessage[]) : [],
    sealed: (item.sealed as TurnBufferState['sealed']) ?? undefined,
    seenCount: seen instanceof Set ? seen.size : 0,
  };
}

function isConditionFailure(error: unknown): boolean {
  return (error as { name?: string })?.name === 'ConditionalCheckFailedException';
}

function unavailable(error: unknown): RetryableError {
  return new RetryableError('turn_buffer_unavailable', 'The turn buffer (DynamoDB) could not be read or written', { cause: error });
}
