import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ItemUpdates } from '../aws/item-updates';
import { CONTACTS_BY_USER_ID_INDEX, CONTACTS_BY_WA_ID_INDEX, CONTACTS_BY_GROUP_INDEX } from '../aws/resources';
import { RetryableError } from '../errors';
import { contactDigest } from '../privacy/pseudonyms';
import type { ContactIdentity, ContactState, PauseSource } from './contact-state';

/** A state as read, with the version its next write is conditioned on. */
export interface VersionedContactState {
  state: ContactState;
  version: number;
}

/** Which of a contact's ids an id is. */
export type IdKind = keyof ContactIdentity;

/** How `find` looks: by default a direct read of the item the likeliest id's key derives from, then the indexes. */
export interface FindOptions {
  /** The kinds to try, likeliest first (default: group, BSUID, wa_id: the order a new contact's key is derived in). */
  order?: readonly IdKind[];
  /**
   * The contactId this process last knew for `identity`'s first id: read directly instead of the
   * derived key (which misses for a person first seen by another id). The item counts only while it still names that id.
   */
  contactId?: string;
  /** false: straight to the indexes (a person the process never met is most often new, and a new person's direct read misses). */
  direct?: boolean;
}

/** The contact-state table: one item per line and contact (src/conversation/README in the project README). */
export interface ContactStore {
  /** By any id the conversation is known by (wa_id, BSUID or group). */
  find(lineId: string, identity: ContactIdentity, options?: FindOptions): Promise<VersionedContactState | undefined>;
  /** Writes `state` if the item is still at `expectedVersion` (0: not there yet). False: someone wrote first; read again. */
  write(state: ContactState, expectedVersion: number): Promise<boolean>;
  /** By the digest of one of its ids (contactDigest): what the journal keeps of an event's contact. */
  findByDigest(lineId: string, digest: string): Promise<VersionedContactState | undefined>;
  /** Erasure's "per-contact state" step: the record found by either id, gone. True when there was one. */
  deleteContact(lineId: string, contact: string): Promise<boolean>;
}

/**
 * The id of a contact first seen under `identity`: derived from it, not random, so two workers that
 * meet a new person at once (a message and a status lane, say) write the same item, and the second
 * write's condition sends it back to read the first.
 */
export function contactIdFor(lineId: string, identity: ContactIdentity): string {
  const first = identity.groupId ?? identity.userId ?? identity.waId ?? '';
  return `ct_${contactDigest(`${lineId}#${first}`)}`;
}

/**
 * The id a new contact gets when `taken` (their derived id) already holds someone else: a person who
 * was first seen under this id and has moved off it (a number given up and handed to someone new).
 * Derived too, so two workers meeting the newcomer at once still make one record.
 */
export function nextContactId(lineId: string, taken: string): string {
  return `ct_${contactDigest(`${lineId}#${taken}`)}`;
}

const DEFAULT_ORDER: readonly IdKind[] = ['groupId', 'userId', 'waId'];
const INDEX_OF: Record<IdKind, string> = { groupId: CONTACTS_BY_GROUP_INDEX, userId: CONTACTS_BY_USER_ID_INDEX, waId: CONTACTS_BY_WA_ID_INDEX };

/**
 * The kinds an id of unknown kind (the API's `:contact`, a reply's `to`) most likely is, likeliest first.
 * A wa_id is digits only; BSUIDs (`US.1349…`) carry letters; Meta's group ids have no documented shape
 * (ours in tests: `G123`), so a digits-only id may still be one: every kind stays, only the order changes.
 */
export function likelyKinds(id: string): readonly IdKind[] {
  return /^\+?\d+$/.test(id) ? ['waId', 'userId', 'groupId'] : ['userId', 'groupId', 'waId'];
}

const indexKey = (lineId: string, id: string) => digestKey(lineId, contactDigest(id));
const digestKey = (lineId: string, digest: string) => `${lineId}#${digest}`;

/**
 * DynamoDB: item `contact#<lineId>#<contactId>` with the state, plus `waIdKey`, `userIdKey` and
 * `groupKey` (`<lineId>#<digest of the id>`), each the hash key of a KEYS_ONLY index. Each write is a
 * PutItem conditioned on the version read, so concurrent workers never lose each other's facts.
 */
export class DynamoContactStore implements ContactStore {
  /** The worker's reads and writes (one per payload and person): the cached client when given (src/aws/item-updates.ts). */
  private readonly items: ItemUpdates;

  constructor(
    private readonly options: {
      documents: DynamoDBDocumentClient;
      /** createAwsClients' itemUpdates. */
      itemUpdates?: DynamoDBClient;
      tableName: string;
    },
  ) {
    this.items = new ItemUpdates(options.documents, options.itemUpdates);
  }

  async find(lineId: string, identity: ContactIdentity, options: FindOptions = {}): Promise<VersionedContactState | undefined> {
    const kinds = (options.order ?? DEFAULT_ORDER).filter((kind) => identity[kind] !== undefined);
    const first = kinds[0];
    if (first === undefined) return undefined;
    if (options.direct !== false) {
      const id = identity[first]!;
      const direct = await this.get(pk(lineId, options.contactId ?? contactIdFor(lineId, { [first]: id })));
      // The key says only who was seen first: after a number change it may hold someone who moved on.
      if (direct && kinds.some((kind) => identity[kind] === id && direct.state[kind] === id)) return direct;
    }
    for (const kind of kinds) {
      const key = await this.keyByIndex(INDEX_OF[kind], indexKey(lineId, identity[kind]!));
      if (key === undefined) continue;
      const found = await this.get(key);
      // The index lags the item: right after a number change it may still point the old number at the mover.
      if (found && found.state[kind] === identity[kind]) return found;
    }
    return undefined;
  }

  async findByDigest(lineId: string, digest: string): Promise<VersionedContactState | undefined> {
    for (const index of [CONTACTS_BY_USER_ID_INDEX, CONTACTS_BY_WA_ID_INDEX, CONTACTS_BY_GROUP_INDEX]) {
      const pk = await this.keyByIndex(index, digestKey(lineId, digest));
      const found = pk === undefined ? undefined : await this.get(pk);
      if (found) return found;
    }
    return undefined;
  }

  async write(state: ContactState, expectedVersion: number): Promise<boolean> {
    const item = {
      ...state,
      pk: pk(state.lineId, state.contactId),
      version: expectedVersion + 1,
      updatedAt: new Date().toISOString(),
      ...(state.waId ? { waIdKey: indexKey(state.lineId, state.waId) } : {}),
      ...(state.userId ? { userIdKey: indexKey(state.lineId, state.userId) } : {}),
      ...(state.groupId ? { groupKey: indexKey(state.lineId, state.groupId) } : {}),
    };
    try {
      await this.call(() =>
        this.items.put({
          TableName: this.options.tableName,
          Item: item,
          ConditionExpression: expectedVersion === 0 ? 'attribute_not_exists(pk)' : 'version = :v',
          ExpressionAttributeValues: expectedVersion === 0 ? undefined : { ':v': expectedVersion },
        }),
      );
      return true;
    } catch (error) {
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }

  async deleteContact(lineId: string, contact: string): Promise<boolean> {
    const found = await this.find(lineId, { waId: contact, userId: contact, groupId: contact }, { order: likelyKinds(contact) });
    if (!found) return false;
    await this.call(() => this.options.documents.send(new DeleteCommand({ TableName: this.options.tableName, Key: { pk: pk(lineId, found.state.contactId) } })));
    return true;
  }

  private async keyByIndex(index: string, key: string): Promise<string | undefined> {
    const attribute = index === CONTACTS_BY_WA_ID_INDEX ? 'waIdKey' : index === CONTACTS_BY_USER_ID_INDEX ? 'userIdKey' : 'groupKey';
    const out = await this.call(() =>
      this.items.query({
        TableName: this.options.tableName,
        IndexName: index,
        KeyConditionExpression: '#k = :k',
        ExpressionAttributeNames: { '#k': attribute },
        ExpressionAttributeValues: { ':k': key },
        Limit: 1,
      }),
    );
    return out.Items?.[0]?.pk as string | undefined;
  }

  /** Consistent: the index only points at the item; the state itself is read fresh. */
  private async get(key: string): Promise<VersionedContactState | undefined> {
    const out = await this.call(() => this.items.get({ TableName: this.options.tableName, Key: { pk: key }, ConsistentRead: true }));
    const item = out.Item;
    if (!item) return undefined;
    return { state: fromItem(item), version: Number(item.version ?? 0) };
  }

  private async call<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') throw error;
      throw new RetryableError('contact_state_unavailable', `The contact-state table did not answer: ${(error as Error).message}`);
    }
  }
}

function pk(lineId: string, contactId: string): string {
  return `contact#${lineId}#${contactId}`;
}

function fromItem(item: Record<string, unknown>): ContactState {
  const text = (key: string) => (typeof item[key] === 'string' ? (item[key] as string) : undefined);
  const num = (key: string) => (typeof item[key] === 'number' ? (item[key] as number) : undefined);
  const state: ContactState = { lineId: text('lineId') ?? '', contactId: text('contactId') ?? '' };
  const fields: Partial<ContactState> = {
    waId: text('waId'),
    userId: text('userId'),
    groupId: text('groupId'),
    windowOpenUntil: num('windowOpenUntil'),
    lastInboundAt: num('lastInboundAt'),
    windowClosedAt: num('windowClosedAt'),
    pausedUntil: num('pausedUntil'),
    pausedBy: text('pausedBy') as PauseSource | undefined,
    handoverAt: num('handoverAt'),
  };
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) (state as unknown as Record<string, unknown>)[key] = value;
  return state;
}
