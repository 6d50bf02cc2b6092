import { z } from 'zod';
import type { OutboundBody, OutboundRequest } from './job';

/**
 * The outbound queue's wire contract: one FIFO message per reply, MessageGroupId `<lineId>:<to>`
 * (one recipient's replies in order), MessageDeduplicationId = the outbound id. The body carries
 * the whole job, so the sender needs no read before its claim.
 */
export interface OutboundJob extends OutboundRequest {
  v: 1;
  id: string;
}

const jobSchema = z.object({
  v: z.literal(1),
  id: z.string().min(1),
  lineId: z.string().min(1),
  to: z.string().min(1),
  idempotencyKey: z.string().min(1),
  source: z.enum(['api', 'flow_reply', 'bird_webhook', 'cli']),
  body: z.object({ type: z.string().min(1) }).passthrough(),
});

export function groupIdOf(job: Pick<OutboundRequest, 'lineId' | 'to'>): string {
  return `${job.lineId}:${job.to}`;
}

export function encodeJob(id: string, request: OutboundRequest): string {
  const job: OutboundJob = { v: 1, id, lineId: request.lineId, to: request.to, idempotencyKey: request.idempotencyKey, source: request.source, body: request.body };
  return JSON.stringify(job);
}

/** Undefined when the message is not an outbound job (it is parked, never retried). */
export function decodeJob(raw: string): OutboundJob | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const result = jobSchema.safeParse(parsed);
  return result.success ? { ...result.data, body: result.data.body as OutboundBody } : undefined;
}
