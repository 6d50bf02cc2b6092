import type { Line } from '../../lines/line';
import type { Logger } from '../../observability/logger';
import type { DynamoErasureStore } from './dynamo-erasure-store';
import { erasureTarget, erasureView, looksLikeErasureId, type ErasureRecord, type ErasureView } from './erasure';

/** What the send API's erasure routes and the console share: accept an erasure, show one. */
export class ErasureService {
  constructor(
    private readonly options: {
      store: DynamoErasureStore;
      /** The runner's step names, in order: the view lists every step, done or not. */
      stepNames: readonly string[];
      logger: Logger;
      /** Called once an erasure is durable (the runner in this process looks at once). */
      onAccepted?: () => void;
    },
  ) {}

  /** Durable when this resolves; the same line and contact while one is pending give the same erasure. */
  async request(line: Pick<Line, 'lineId' | 'phoneNumberId'>, contact: string, by: ErasureRecord['requestedBy']): Promise<{ view: ErasureView; created: boolean }> {
    const { record, created } = await this.options.store.accept(erasureTarget(line, contact), by);
    this.options.logger.info(
      { event: 'erasure_accepted', erasureId: record.id, lineId: record.lineId, contactDigest: record.contactDigest, contact: record.contactLastFour, requestedBy: by, created },
      'erasure accepted',
    );
    this.options.onAccepted?.();
    return { view: erasureView(record, this.options.stepNames), created };
  }

  async view(lineId: string, id: string): Promise<ErasureView | undefined> {
    const record = looksLikeErasureId(id) ? await this.options.store.get(id) : undefined;
    return record && record.lineId === lineId ? erasureView(record, this.options.stepNames) : undefined;
  }
}
