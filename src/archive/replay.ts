import { createHash, randomBytes } from 'node:crypto';
import type { PayloadQueue } from '../ingress/producer';
import { verifySignature } from '../ingress/signature';
import type { LineRegistry } from '../lines/registry';
import type { SecretResolver } from '../lines/secrets';
import { inboundRoutes } from '../meta/conversation';
import { envelopeToEvents } from '../meta/envelope';
import type { ArchiveObjects } from './archive-objects';
import { recordsInRange, type ArchiveCursor } from './archive-range';
import { bodyBytes, type ArchiveRecord } from './archive-record';

/** Why a record of the range was not put back on the queue. */
export type ReplaySkipReason = 'unreadable' | 'signature_missing' | 'signature_malformed' | 'signature_mismatch' | 'no_secret' | 'not_an_envelope';

export interface ReplayCounts {
  read: number;
  verified: number;
  enqueued: number;
  skipped: Partial<Record<ReplaySkipReason, number>>;
}

export interface ReplayRequest {
  from: Date;
  to: Date;
  /** Only this line's payloads: its own URL's, and the unified URL's that name its phone number. */
  lineId?: string;
  dryRun?: boolean;
  after?: ArchiveCursor;
}

export interface ArchiveReplayOptions {
  objects: ArchiveObjects;
  queue: PayloadQueue;
  lines: LineRegistry;
  secrets: SecretResolver;
  /** WHATSAPP_APP_SECRETS: valid for every path, as at the ingress. */
  appSecrets: readonly string[];
  /** Payloads sent before the cursor moves on (and progress is reported). */
  pageSize?: number;
  onPage?: (counts: ReplayCounts, cursor: ArchiveCursor) => void | Promise<void>;
}

/**
 * Puts archived payloads back on the inbound queue: each body's signature is verified again (a
 * record that does not verify is counted and skipped, never sent), and each verified payload goes
 * through the ingress's producer, so it reaches its FIFO group(s) (the status lane included) in
 * receive order. The worker's dedupe turns events that completed into no-ops: a replay delivers
 * only what never completed. Each run's messages carry a deduplication id of their own (the
 * body's, prefixed by the run), so SQS's 5-minute dedup never drops a replay of a payload that was
 * purged or lost minutes ago; a second run's copies are handled and found done.
 */
export class ArchiveReplay {
  constructor(private readonly options: ArchiveReplayOptions) {}

  async run(request: ReplayRequest): Promise<ReplayCounts> {
    const counts: ReplayCounts = { read: 0, verified: 0, enqueued: 0, skipped: {} };
    const run = `replay-${randomBytes(4).toString('hex')}`;
    const pageSize = this.options.pageSize ?? 100;
    let page: Promise<void>[] = [];
    let last: ArchiveCursor | undefined;
    const endPage = async () => {
      await Promise.all(page);
      page = [];
      if (last) await this.options.onPage?.(counts, last);
    };
    const skip = (reason: ReplaySkipReason) => (counts.skipped[reason] = (counts.skipped[reason] ?? 0) + 1);

    for await (const item of recordsInRange(this.options.objects, request.from, request.to, request.after)) {
      const { record } = item;
      if (record && request.lineId && !(await this.belongsTo(record, request.lineId))) continue;
      counts.read++;
      last = item.cursor;
      if (!record) {
        skip('unreadable');
        continue;
      }
      const body = bodyBytes(record);
      const check = verifySignature(body, record.signature, await this.secretsFor(record));
      if (!check.ok) {
        skip(check.reason === 'no_secret' ? 'no_secret' : `signature_${check.reason}`);
        continue;
      }
      const envelope = parse(body);
      if (!envelope) {
        skip('not_an_envelope');
        continue;
      }
      counts.verified++;
      if (!request.dryRun) {
        page.push(
          this.options.queue.enqueue({ body, attributes: attributesOf(record, body), routes: inboundRoutes(envelope, envelopeToEvents(envelope)), deduplicationScope: run }).then(() => {
            counts.enqueued++;
          }),
        );
      }
      if (counts.read % pageSize === 0) await endPage();
    }
    await endPage();
    return counts;
  }

  private async secretsFor(record: ArchiveRecord): Promise<readonly string[]> {
    if (!record.lineId) return this.options.appSecrets;
    const line = await this.options.lines.byId(record.lineId);
    const own = line ? await Promise.all(line.appSecrets.map((s) => this.options.secrets.resolve(s))) : [];
    return [...own, ...this.options.appSecrets];
  }

  private async belongsTo(record: ArchiveRecord, lineId: string): Promise<boolean> {
    if (record.lineId) return record.lineId === lineId;
    const envelope = parse(bodyBytes(record));
    const phoneNumberIds = new Set(envelopeToEvents(envelope).map((e) => e.phoneNumberId).filter((id): id is string => !!id));
    for (const id of phoneNumberIds) if ((await this.options.lines.byPhoneNumberId(id))?.lineId === lineId) return true;
    return false;
  }
}

function parse(body: Buffer): { entry: unknown[] } | undefined {
  try {
    const value = JSON.parse(body.toString('utf8')) as { entry?: unknown };
    return value && typeof value === 'object' && Array.isArray(value.entry) ? (value as { entry: unknown[] }) : undefined;
  } catch {
    return undefined;
  }
}

/** The attributes the ingress gave the original, and when it was replayed. */
function attributesOf(record: ArchiveRecord, body: Buffer): Record<string, string> {
  return {
    receivedAt: record.receivedAt,
    requestId: record.requestId,
    bodySha256: createHash('sha256').update(body).digest('hex'),
    replayedAt: new Date().toISOString(),
    ...(record.lineId ? { lineId: record.lineId } : {}),
  };
}
