import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** SQS's maximum since 2025; aws-cdk-lib 2.276 validates up to this value, so no escape hatch is needed. */
export const MAX_MESSAGE_BYTES = 1_048_576;

export interface WebhookQueuesProps {
  visibilityTimeoutSeconds: number;
  maxReceiveCount: number;
}

/**
 * The durable hand-off between ingress and worker. Meta is answered 200 only once the main queue
 * has the envelope, so both queues are retained if the stack is deleted.
 */
export class WebhookQueues extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  /**
   * The durable timer of conversation turns (src/worker/turns): delayed messages that wake a
   * conversation's turn buffer. Standard, because FIFO queues take no per-message delay; a timer
   * only triggers an idempotent flush, so its at-least-once, unordered delivery is enough.
   */
  readonly turnQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: WebhookQueuesProps) {
    super(scope, id);

    // FIFO in high-throughput mode (deduplication and quota per message group): each conversation
    // (`<phone_number_id>:<contact>`) is one group, delivered in order, one message in flight at a
    // time, while conversations run in parallel; statuses go to `<phone_number_id>:<recipient>:status`
    // so no stuck message holds them back. The DLQ of a FIFO queue must be FIFO too.
    const fifo = {
      fifo: true,
      deduplicationScope: sqs.DeduplicationScope.MESSAGE_GROUP,
      fifoThroughputLimit: sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
    };
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      ...fifo,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      maxMessageSizeBytes: MAX_MESSAGE_BYTES,
      // The longest SQS allows: time to find and fix a cause before redriving.
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.queue = new sqs.Queue(this, 'Queue', {
      ...fifo,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      maxMessageSizeBytes: MAX_MESSAGE_BYTES,
      visibilityTimeout: Duration.seconds(props.visibilityTimeoutSeconds),
      // Meta retries for 7 days; once SQS said yes the event is ours alone, so keep it at least
      // as long as a worker outage could last.
      retentionPeriod: Duration.days(14),
      receiveMessageWaitTime: Duration.seconds(20),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount },
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.turnQueue = new sqs.Queue(this, 'TurnTimerQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // The worker's timer loop receives with 30 s: a flush that fails is tried again then.
      visibilityTimeout: Duration.seconds(30),
      // A pending turn waits for its timer through a worker outage of any length the main queue survives.
      retentionPeriod: Duration.days(14),
      receiveMessageWaitTime: Duration.seconds(20),
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}
