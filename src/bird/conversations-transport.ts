import { PermanentError, RetryableError } from '../errors';
import type { BirdConversationsTarget } from '../lines/line';
import type { Logger } from '../observability/logger';
import {
  buildConversationMessageBody,
  buildCreateConversation,
  buildCreateConversationMessage,
  contactPhoneNumber,
  conversationMessagesPath,
  conversationRefOf,
  conversationsOfContactPath,
  conversationsPath,
  firstConversationOf,
  type ConversationRef,
} from './conversations-request';
import type { BirdDelivery } from './delivery';
import type { HostBreakers } from './host-breakers';
import type { HttpCallPolicy } from './http-call-policy';

/**
 * The conversations transport: find (or create) the contact's conversation on the line's channel,
 * then post the message as the contact. Only messages travel this way: a status or an account
 * event is accepted without a call.
 */
export class ConversationsTransport {
  /** Concurrent deliveries for one contact share one conversation lookup (and at most one create). */
  private readonly lookups = new Map<string, Promise<ConversationRef>>();

  constructor(
    private readonly policy: HttpCallPolicy,
    private readonly breakers: HostBreakers,
    private readonly baseUrl: string,
    private readonly logger: Logger,
  ) {}

  /** False when the transport had nothing to send for this event. */
  async deliver(delivery: BirdDelivery, target: BirdConversationsTarget): Promise<boolean> {
    const body = buildConversationMessageBody(delivery);
    if (!body) {
      this.logger.debug(
        { lineId: delivery.lineId, kind: delivery.event.kind, reference: delivery.event.key },
        'conversations transport carries only messages: event accepted without a Bird call',
      );
      return false;
    }
    const phoneNumber = contactPhoneNumber(delivery.event);
    if (!phoneNumber) {
      throw new PermanentError(
        'bird_contact_unaddressable',
        `Event ${delivery.event.key} has no contact phone number; Bird conversations address WhatsApp contacts by phone number. Use the flow transport for this line.`,
      );
    }
    const headers = { 'Content-Type': 'application/json', Accept: 'application/json', Authorization: `AccessKey ${target.accessKey}` };
    await this.breakers.run(new URL(this.baseUrl).host, async () => {
      const conversation = await this.conversationFor(delivery, target, phoneNumber, headers);
      const message = buildCreateConversationMessage(delivery, body, phoneNumber, conversation.contactParticipantId);
      await this.policy.send({
        transport: 'conversations',
        method: 'POST',
        url: this.baseUrl + conversationMessagesPath(target.workspaceId, conversation.conversationId),
        headers: { ...headers, 'Idempotency-Key': delivery.event.key },
        body: Buffer.from(JSON.stringify(message), 'utf8'),
        signal: delivery.signal,
      });
    });
    return true;
  }

  private conversationFor(
    delivery: BirdDelivery,
    target: BirdConversationsTarget,
    phoneNumber: string,
    headers: Record<string, string>,
  ): Promise<ConversationRef> {
    const key = `${target.workspaceId}\n${target.channelId}\n${phoneNumber}`;
    const pending = this.lookups.get(key);
    if (pending) return pending;
    const lookup = (async () => {
      const listed = await this.policy.send({
        transport: 'conversations',
        method: 'GET',
        url: this.baseUrl + conversationsOfContactPath(target.workspaceId, phoneNumber, target.channelId),
        headers: { Authorization: headers.Authorization!, Accept: 'application/json' },
      });
      const found = firstConversationOf(listed);
      if (found) return found;
      const created = conversationRefOf(
        await this.policy.send({
          transport: 'conversations',
          method: 'POST',
          url: this.baseUrl + conversationsPath(target.workspaceId),
          headers: { ...headers, 'Idempotency-Key': `conversation:${delivery.event.key}` },
          body: Buffer.from(JSON.stringify(buildCreateConversation(target.channelId, phoneNumber)), 'utf8'),
        }),
      );
      if (!created) throw new RetryableError('bird_bad_response', 'Bird created a conversation but its answer has no conversation id');
      return created;
    })().finally(() => this.lookups.delete(key));
    this.lookups.set(key, lookup);
    return lookup;
  }
}
