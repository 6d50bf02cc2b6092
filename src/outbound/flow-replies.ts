import { Counter, type Registry } from 'prom-client';
import type { BirdAnswer } from '../bird/delivery';
import { flowRepliesOf } from '../bird/flow-answer';
import { PermanentError } from '../errors';
import type { Line } from '../lines/line';
import type { WhatsAppEvent } from '../meta/event';
import { maskPhone, type Logger } from '../observability/logger';
import type { OutboundAcceptor, OutboundBody } from './job';

/**
 * The step between "Bird accepted the event" and "the event is COMPLETED": a Flow's synchronous
 * replies are made durable first, so a retried or redriven event finds them already queued under
 * the same keys and never replies twice, whatever Bird answers the second time.
 */
export interface ReplyScheduler {
  /** Resolves once every reply is accepted; throws RetryableError when they cannot be made durable. */
  /** `receivedAt`: the inbound event's receive time, kept on each reply for the delivery latency. */
  schedule(args: { line: Line; event: WhatsAppEvent; answer: BirdAnswer; receivedAt?: string }): Promise<void>;
}

/** `reply:<event key>:<index>`: the index in Bird's array, so the keys do not move when a reply is invalid. */
export function replyKey(eventKey: string, index: number): string {
  return `reply:${eventKey}:${index}`;
}

type Outcome = 'queued' | 'duplicate' | 'superseded' | 'invalid' | 'no_contact' | 'not_a_message';

export class FlowReplyScheduler implements ReplyScheduler {
  private readonly replies: Counter<'outcome'>;

  constructor(
    private readonly options: { acceptor: OutboundAcceptor; registry: Registry; logger: Logger },
  ) {
    this.replies = new Counter({
      name: 'wa_ingress_flow_replies_total',
      help: "A Flow's synchronous replies by outcome (queued, duplicate, superseded, invalid, no_contact, not_a_message)",
      labelNames: ['outcome'],
      registers: [options.registry],
    });
  }

  async schedule({ line, event, answer, receivedAt }: { line: Line; event: WhatsAppEvent; answer: BirdAnswer; receivedAt?: string }): Promise<void> {
    const found = flowRepliesOf(answer.flowResponse);
    const log = this.options.logger.child({ lineId: line.lineId, eventKey: event.key });
    if ('invalid' in found) {
      this.count('invalid');
      log.warn({ event: 'flow_reply_invalid', problem: found.invalid }, "the Flow's answer has replies that are not a list; nothing sent");
      return;
    }
    if (!found.replies || found.replies.length === 0) return;
    if (event.kind !== 'message' && event.kind !== 'turn') {
      // Only what a person said (a message, or a turn of several) is answered: every reply brings back
      // sent/delivered/read statuses, and a Flow that answered those would talk to the user forever.
      this.count('not_a_message', found.replies.length);
      log.warn({ event: 'flow_reply_invalid', kind: event.kind, problem: 'replies answer messages only' }, 'replies to a non-message event dropped');
      return;
    }
    // A BSUID-only user (2026) has no wa_id: Meta then addresses them by their user id.
    const to = event.contact?.waId ?? event.contact?.userId;
    if (!to) {
      this.count('no_contact', found.replies.length);
      log.warn({ event: 'flow_reply_invalid', problem: 'the event has no contact to reply to', replies: found.replies.length }, 'replies dropped');
      return;
    }
    // One after the other: the FIFO group keeps the order in which they were accepted.
    for (const [index, reply] of found.replies.entries()) {
      const idempotencyKey = replyKey(event.key, index);
      try {
        // The acceptor checks the body against the send-body schema (PermanentError naming the field).
        const accepted = await this.options.acceptor.accept({ lineId: line.lineId, to, idempotencyKey, body: reply as OutboundBody, source: 'flow_reply', inboundReceivedAt: receivedAt });
        this.count(accepted.duplicate ? 'duplicate' : 'queued');
        log.debug({ outboundId: accepted.id, index, to: maskPhone(to), duplicate: accepted.duplicate }, 'flow reply queued');
      } catch (error) {
        if (error instanceof PermanentError && error.reason === 'idempotency_key_reused') {
          // A retry or a redrive, and Bird answered differently: the event was answered before, and
          // that first answer is the one that goes out. Nothing of this one is sent, not even replies
          // past the first answer's length.
          const dropped = found.replies.length - index;
          this.count('superseded', dropped);
          log.info({ index, idempotencyKey, dropped }, 'the event was answered before with other replies; this answer is not sent');
          return;
        }
        if (error instanceof PermanentError) {
          // Not a sendable body: Bird would answer the same way again. Count, say which field, send the others.
          this.count('invalid');
          log.warn({ event: 'flow_reply_invalid', index, reason: error.reason, problem: error.message }, 'a Flow reply is not a valid send body; it is not sent');
          continue;
        }
        throw error;
      }
    }
  }

  private count(outcome: Outcome, n = 1): void {
    this.replies.inc({ outcome }, n);
  }
}
