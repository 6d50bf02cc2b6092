import type { OperatorDecision, SendFence } from './outbound-store';
import { ConditionalRecordUpdate, describeError, journeyStep } from './dynamo-record-update';
import { STATE_RANK, type OutboundError, type SuppressedReason } from './record';
import { wamidDigest } from '../privacy/pseudonyms';

/**
 * The writes that end one send, and the operator's decisions on an uncertain reply. Each send
 * outcome carries its claim's attempt number in the condition (the fencing token): a sender that
 * paused past its lease is refused once another claim was taken, and leaves the record to it.
 */
export class DynamoSendOutcomes {
  constructor(
    private readonly update: ConditionalRecordUpdate,
    private readonly clock: () => number,
  ) {}

  async markSent(fence: SendFence, wamid: string): Promise<boolean> {
    const now = this.clock();
    return this.applied('sent', fence, {
      UpdateExpression: 'SET #status = :sent, #rank = :rank, #wamid = :wamid, #updatedAt = :at, #journey = list_append(#journey, :step) REMOVE #retryAt',
      ConditionExpression: 'attribute_exists(#pk) AND #rank < :rank AND #attempts = :attempt',
      ExpressionAttributeValues: { ':sent': 'sent', ':rank': STATE_RANK.sent, ':wamid': wamidDigest(wamid), ':at': new Date(now).toISOString(), ':step': [journeyStep(now, 'sent', wamidDigest(wamid))] },
    });
  }

  /** Counts the ambiguous send; `graceMs` undefined parks it for an operator (no retryAt: never claimed). */
  async markUncertain(fence: SendFence, graceMs: number | undefined, detail: string): Promise<boolean> {
    const now = this.clock();
    const values: Record<string, unknown> = { ':uncertain': 'uncertain', ':sending': 'sending', ':one': 1, ':at': new Date(now).toISOString(), ':step': [journeyStep(now, 'uncertain', detail)] };
    if (graceMs !== undefined) values[':retryAt'] = now + graceMs;
    const set = 'SET #status = :uncertain, #updatedAt = :at, #journey = list_append(#journey, :step)';
    return this.applied('uncertain', fence, {
      UpdateExpression: graceMs !== undefined ? `${set}, #retryAt = :retryAt ADD #ambiguousSends :one` : `${set} ADD #ambiguousSends :one REMOVE #retryAt`,
      ConditionExpression: '#status = :sending AND #attempts = :attempt',
      ExpressionAttributeValues: values,
    });
  }

  async release(fence: SendFence, detail: string): Promise<boolean> {
    const now = this.clock();
    return this.applied('release', fence, {
      UpdateExpression: 'SET #status = :queued, #rank = :rank, #updatedAt = :at, #journey = list_append(#journey, :step) REMOVE #retryAt',
      ConditionExpression: '#status = :sending AND #attempts = :attempt',
      ExpressionAttributeValues: { ':queued': 'queued', ':sending': 'sending', ':rank': STATE_RANK.queued, ':at': new Date(now).toISOString(), ':step': [journeyStep(now, 'retry', detail)] },
    });
  }

  async markFailed(fence: SendFence, error: OutboundError): Promise<boolean> {
    const now = this.clock();
    return this.applied('failed', fence, {
      UpdateExpression: 'SET #status = :failed, #rank = :rank, #error = :error, #updatedAt = :at, #journey = list_append(#journey, :step) REMOVE #retryAt',
      ConditionExpression: 'attribute_exists(#pk) AND #rank < :rank AND #attempts = :attempt',
      ExpressionAttributeValues: { ':failed': 'failed', ':rank': STATE_RANK.failed, ':error': error, ':at': new Date(now).toISOString(), ':step': [journeyStep(now, 'failed', describeError(error))] },
    });
  }

  /** Not sent by policy (the contact is paused): terminal, and Graph was never called. */
  async markSuppressed(fence: SendFence, reason: SuppressedReason): Promise<boolean> {
    const now = this.clock();
    return this.applied('suppressed', fence, {
      UpdateExpression: 'SET #status = :suppressed, #rank = :rank, #suppressedReason = :reason, #updatedAt = :at, #journey = list_append(#journey, :step) REMOVE #retryAt',
      ConditionExpression: 'attribute_exists(#pk) AND #rank < :rank AND #attempts = :attempt',
      ExpressionAttributeValues: { ':suppressed': 'suppressed', ':rank': STATE_RANK.suppressed, ':reason': reason, ':at': new Date(now).toISOString(), ':step': [journeyStep(now, 'suppressed', reason)] },
    });
  }

  /**
   * An operator's decision on a reply parked uncertain (and only on one: a status or another
   * decision that came first wins). `resend` makes it claimable for one more send: its ambiguous
   * count stays past the cap, so another ambiguous outcome parks it again. `mark_sent` settles it
   * `sent` with no wamid (none was ever seen); a later status still moves it forward.
   */
  async decide(id: string, decision: OperatorDecision): Promise<boolean> {
    const now = this.clock();
    const why = `by ${decision.actor}: ${decision.reason}`;
    const parked = '#status = :uncertain AND attribute_not_exists(#retryAt)';
    const at = new Date(now).toISOString();
    const answer =
      decision.action === 'resend'
        ? await this.update.apply('operator_resend', id, {
            // retryAt 0: already past, so the next claim takes it at once.
            UpdateExpression: 'SET #retryAt = :past, #updatedAt = :at, #journey = list_append(#journey, :step)',
            ConditionExpression: parked,
            ExpressionAttributeValues: { ':uncertain': 'uncertain', ':past': 0, ':at': at, ':step': [journeyStep(now, 'operator', `resend allowed ${why}`)] },
          })
        : await this.update.apply('operator_mark_sent', id, {
            UpdateExpression: 'SET #status = :sent, #rank = :rank, #updatedAt = :at, #journey = list_append(#journey, :step)',
            ConditionExpression: parked,
            ExpressionAttributeValues: { ':uncertain': 'uncertain', ':sent': 'sent', ':rank': STATE_RANK.sent, ':at': at, ':step': [journeyStep(now, 'operator', `marked sent ${why} (no wamid: Meta's answer was never seen)`)] },
          });
    return answer !== undefined;
  }

  private async applied(operation: string, fence: SendFence, input: Parameters<ConditionalRecordUpdate['apply']>[2]): Promise<boolean> {
    const values = { ...input.ExpressionAttributeValues, ':attempt': fence.attempt };
    return (await this.update.apply(operation, fence.id, { ...input, ExpressionAttributeValues: values })) !== undefined;
  }
}
