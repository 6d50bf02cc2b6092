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

  constructor(scope: Construct, id: string, props: WebhookQueuesProps) {
    super(scope, id);

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      maxMessageSizeBytes: MAX_MESSAGE_BYTES,
      // The longest SQS allows: time to find and fix a cause before redriving.
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.queue = new sqs.Queue(this, 'Queue', {
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
  }
}
