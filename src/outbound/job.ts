/**
 * The outbound contract shared by every entry into the outbound pipeline (send API, a Flow's
 * synchronous `replies`, Bird webhooks) and the sender. See ARCHITECTURE.md §5.
 */

/** Where a reply came from; kept on the record for the operator. */
export type OutboundSource = 'api' | 'flow_reply' | 'bird_webhook' | 'cli';

/**
 * queued < sending < sent < delivered < read; failed is terminal. Statuses never move backwards.
 * `uncertain` (rank of sending): Meta may have taken it; a status, a resend or an operator settles it.
 * `suppressed` (terminal, like failed): the AI's reply was never sent because the contact was
 * paused (a human has the conversation); `suppressedReason` says why. Graph was never called.
 */
export type OutboundStatus = 'queued' | 'sending' | 'uncertain' | 'sent' | 'delivered' | 'read' | 'failed' | 'suppressed';

/** A Meta send body (`POST /{phone_number_id}/messages`) without `to`; validated before acceptance. */
export type OutboundBody = Record<string, unknown> & { type: string };

/** What an entry asks the pipeline to send. */
export interface OutboundRequest {
  lineId: string;
  /** A wa_id, or a business-scoped user id when the contact has no wa_id. */
  to: string;
  /** Unique per line: the same key with the same body is the same message, never sent twice. */
  idempotencyKey: string;
  body: OutboundBody;
  source: OutboundSource;
  /** A Flow reply: when its inbound event was received (the delivery latency's start). */
  inboundReceivedAt?: string;
}

/** The answer of an acceptance: durable on the outbound queue when this resolves. */
export interface AcceptedOutbound {
  /** The outbound id: `biz_opaque_callback_data` of the send, and the FIFO dedup id. */
  id: string;
  status: OutboundStatus;
  /** True when the key was seen before with the same body: nothing new was queued. */
  duplicate: boolean;
}

/**
 * Makes a reply durable. Resolves only once the job is on the outbound FIFO queue; rejects with
 * RetryableError('outbound_unavailable') when it cannot be made durable (the caller answers 503 or
 * retries its inbound event), PermanentError('idempotency_key_reused') for the same key with a
 * different body.
 */
export interface OutboundAcceptor {
  accept(request: OutboundRequest): Promise<AcceptedOutbound>;
}
