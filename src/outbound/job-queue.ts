import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Registry } from '../observability/metrics';
import { sqsCallsCounter } from '../queue/sqs-calls';
import type { Counter } from '../observability/metrics';
import type { OutboundRequest } from './job';
import { encodeJob, groupIdOf } from './job-message';

/**
 * Puts one reply's job on the outbound FIFO queue: group `<lineId>:<to>`, deduplication id = the
 * outbound id. The acceptor and the outbox sweeper both enqueue through it, so a job enqueued again
 * is byte for byte the one the acceptor would have sent, and FIFO deduplication drops the copy.
 */
export class OutboundJobQueue {
  private readonly sqsCalls: Counter<'operation'>;

  constructor(
    private readonly options: {
      sqs: SQSClient;
      /** SQS_OUTBOUND_QUEUE_URL (FIFO). */
      queueUrl: string;
      /** SendMessage gives up after this (SQS_SEND_TIMEOUT_MS). */
      timeoutMs: number;
      registry: Registry;
    },
  ) {
    this.sqsCalls = sqsCallsCounter(options.registry);
  }

  async enqueue(id: string, request: OutboundRequest): Promise<void> {
    this.sqsCalls.inc({ operation: 'SendMessage' });
    await this.options.sqs.send(
      new SendMessageCommand({
        QueueUrl: this.options.queueUrl,
        MessageBody: encodeJob(id, request),
        MessageGroupId: groupIdOf(request),
        MessageDeduplicationId: id,
      }),
      { abortSignal: AbortSignal.timeout(this.options.timeoutMs) },
    );
  }
}
