import type { OutboundRef, WhatsAppEvent } from '../meta/event';
import { sharedCounter, type Counter, type Registry } from '../observability/metrics';
import type { OutboundStore, StatusUpdate } from './outbound-store';
import { looksLikeOutboundId, type OutboundPricing } from './record';

/**
 * The inbound pipeline's hook for Meta's status webhooks: a status of a reply the gateway sent
 * settles its record (forward only) and tells which reply it was, so the status forwarded to Bird
 * carries `outbound: {id, idempotencyKey}`. Undefined for statuses of messages sent elsewhere.
 */
export interface OutboundStatusSettler {
  settle(lineId: string, event: WhatsAppEvent): Promise<OutboundRef | undefined>;
}

/**
 * What one settle did: `applied` (the record took the step), `stale` (it was already as far or
 * further: nothing changed), `foreign` (no record of this line has the id: a message sent elsewhere).
 */
export type SettleResult = 'applied' | 'stale' | 'foreign';

export interface SettledStatus {
  result: SettleResult;
  /** Set unless `foreign`. */
  outbound?: OutboundRef;
}

const SETTLING = new Set(['sent', 'delivered', 'read', 'failed']);

/** The fields of a Meta status item the settler reads. Pure. */
export function statusUpdateOf(lineId: string, event: WhatsAppEvent): StatusUpdate | undefined {
  if (event.kind !== 'status' || !event.status || !SETTLING.has(event.status.status)) return undefined;
  const raw = (event.raw ?? {}) as { biz_opaque_callback_data?: unknown; pricing?: unknown; errors?: Array<{ code?: unknown; title?: unknown; message?: unknown }> };
  const firstError = Array.isArray(raw.errors) ? raw.errors[0] : undefined;
  const update: StatusUpdate = {
    lineId,
    wamid: event.status.id,
    status: event.status.status as StatusUpdate['status'],
    ...(looksLikeOutboundId(raw.biz_opaque_callback_data) ? { id: raw.biz_opaque_callback_data } : {}),
  };
  const pricing = pricingOf(raw.pricing);
  if (pricing) update.pricing = pricing;
  if (update.status === 'failed') {
    update.error = {
      ...(typeof firstError?.code === 'number' ? { code: firstError.code } : {}),
      title: String(firstError?.title ?? firstError?.message ?? 'failed').slice(0, 200),
    };
  }
  return update;
}

/** Meta's `pricing` object, its four known fields kept when they have their type; undefined when none does. */
export function pricingOf(value: unknown): OutboundPricing | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const raw = value as Record<string, unknown>;
  const text = (key: string) => (typeof raw[key] === 'string' && (raw[key] as string).length <= 64 ? { [key]: raw[key] as string } : {});
  const pricing: OutboundPricing = {
    ...(typeof raw.billable === 'boolean' ? { billable: raw.billable } : {}),
    ...text('pricing_model'),
    ...text('category'),
    ...text('type'),
  };
  return Object.keys(pricing).length > 0 ? pricing : undefined;
}

export class StoreStatusSettler implements OutboundStatusSettler {
  private readonly settled: Counter<'status' | 'result'>;
  private readonly billable: Counter<'lineId' | 'category'>;

  constructor(
    private readonly store: OutboundStore,
    registry: Registry,
  ) {
    // Shared by name: the ingress (src/ingress/status-settlement.ts) and the worker may each hold one on the same registry.
    this.settled = sharedCounter(registry, {
      name: 'wa_ingress_outbound_statuses_total',
      help: 'Status webhooks of replies the gateway sent, by status and result (applied, stale: the record was already further, foreign: not ours)',
      labelNames: ['status', 'result'],
    });
    this.billable = sharedCounter(registry, {
      name: 'wa_ingress_outbound_billable_total',
      help: 'Replies Meta priced as billable (pricing.billable in their first status with a pricing), by line and pricing category: counts, not money',
      labelNames: ['lineId', 'category'],
    });
  }

  async settle(lineId: string, event: WhatsAppEvent): Promise<OutboundRef | undefined> {
    return (await this.settleWithResult(lineId, event))?.outbound;
  }

  /** As settle, telling what the write did; undefined when the event is no status that settles. */
  async settleWithResult(lineId: string, event: WhatsAppEvent): Promise<SettledStatus | undefined> {
    const update = statusUpdateOf(lineId, event);
    if (!update) return undefined;
    const record = await this.store.settle(update);
    if (!record) {
      this.settled.inc({ status: update.status, result: 'foreign' });
      return { result: 'foreign' };
    }
    const result = record.stepped ? 'applied' : 'stale';
    this.settled.inc({ status: update.status, result });
    if (record.pricedNow && update.pricing?.billable) this.billable.inc({ lineId, category: update.pricing.category ?? 'unknown' });
    return { result, outbound: { id: record.id, idempotencyKey: record.idempotencyKey } };
  }
}
