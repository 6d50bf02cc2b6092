import type { Message } from '@aws-sdk/client-sqs';
import type { PermanentReason } from '../../errors';
import { conversationOf, STATUS_GROUP_SUFFIX } from '../../meta/conversation';
import { conversationOf as groupOfDlqMessage } from '../../queue/dlq-entry';
import { INGRESS_ATTRIBUTES } from '../../queue/message';
import { contactDigest } from '../pseudonyms';
import { refusedAtRedrive } from './erasure';

/**
 * The DLQ redrive's check (src/queue/dlq.ts `refuse`): a parked inbound message of a contact erased
 * after it was received goes nowhere (reason `erased`): its payload would bring the person's data
 * back. The conversation is read off the payload, or off the FIFO group when the body is a claim-check
 * pointer; the erased marker is keyed by the line's phone number id and the contact's digest.
 */
export class ErasedContactRedriveGuard {
  constructor(private readonly erasures: { erasedAt(phoneNumberId: string, contactDigest: string): Promise<string | undefined> }) {}

  readonly refuse = async (message: Message): Promise<PermanentReason | undefined> => {
    const conversation = conversationOfMessage(message);
    if (!conversation) return undefined;
    const erasedAt = await this.erasures.erasedAt(conversation.phoneNumberId, contactDigest(conversation.contact));
    return refusedAtRedrive(erasedAt, message.MessageAttributes?.[INGRESS_ATTRIBUTES.receivedAt]?.StringValue) ? 'erased' : undefined;
  };
}

function conversationOfMessage(message: Message): { phoneNumberId: string; contact: string } | undefined {
  let payload: unknown;
  try {
    payload = JSON.parse(message.Body ?? '');
  } catch {
    payload = undefined;
  }
  if (typeof payload === 'object' && payload !== null && 'entry' in payload) {
    const side = conversationOf(payload);
    return side.contact === '-' ? undefined : side;
  }
  // `<phone_number_id>:<contact>`, or `…:status` on the status lane (src/meta/conversation.ts), as parked (the
  // parking record's group, else the DLQ message's own); a hashed group (`sha256:…`) names nobody readable.
  const raw = groupOfDlqMessage(message);
  const group = raw?.endsWith(STATUS_GROUP_SUFFIX) ? raw.slice(0, -STATUS_GROUP_SUFFIX.length) : raw;
  const match = group && !group.startsWith('sha256:') ? /^([^:]+):(.+)$/.exec(group) : null;
  return match ? { phoneNumberId: match[1]!, contact: match[2]! } : undefined;
}
