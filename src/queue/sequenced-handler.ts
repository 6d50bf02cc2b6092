import type { Logger } from '../observability/logger';
import type { Registry } from '../observability/metrics';
import { GroupHold } from './group-hold';
import type { MessageHandler } from './poller';

export interface SequencedHandlerOptions {
  handler: MessageHandler;
  logger: Logger;
  registry: Registry;
  /** The poller's retry backoff (retryBaseSeconds / retryMaxSeconds): the delay a retried message gets is fixed here, so the messages held behind it can wait longer. */
  retryPolicy: { baseSeconds: number; maxSeconds: number };
  now?: () => number;
}

/**
 * Conversation order in the worker, around the message handler. On a FIFO queue each message
 * carries its conversation's MessageGroupId; the GroupHold runs one message per conversation at a
 * time, holds the rest of a conversation back behind a retried message, and hands back at shutdown
 * what still waits for its turn. Messages from a standard queue (no group) go straight to the handler.
 */
export class SequencedHandler {
  private readonly hold: GroupHold;

  constructor(private readonly options: SequencedHandlerOptions) {
    this.hold = new GroupHold({
      retryPolicy: options.retryPolicy,
      heldReason: 'conversation_held',
      metricsPrefix: 'wa_ingress_worker',
      logger: options.logger,
      registry: options.registry,
      now: options.now,
    });
  }

  /** Conversations with a message running or queued in this process. */
  get activeGroups(): number {
    return this.hold.activeGroups;
  }

  readonly handle: MessageHandler = async (message, context) => {
    const group = message.groupId;
    if (group === undefined) return this.options.handler(message, context);
    return this.hold.run(group, message, () => this.options.handler(message, context), context?.signal);
  };
}
