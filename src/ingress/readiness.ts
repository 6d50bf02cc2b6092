import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';

export interface ReadinessProbe {
  ready(): Promise<boolean>;
}

/** SQS is reachable when GetQueueAttributes answers; the answer is cached briefly so probes stay cheap. */
export class SqsReadiness implements ReadinessProbe {
  private last: { at: number; value: Promise<boolean> } | undefined;

  constructor(private readonly options: { sqs: SQSClient; queueUrl: string; timeoutMs?: number; cacheMs?: number }) {}

  ready(): Promise<boolean> {
    const now = Date.now();
    if (this.last && now - this.last.at < (this.options.cacheMs ?? 2000)) return this.last.value;
    const value = this.options.sqs
      .send(new GetQueueAttributesCommand({ QueueUrl: this.options.queueUrl, AttributeNames: ['QueueArn'] }), {
        abortSignal: AbortSignal.timeout(this.options.timeoutMs ?? 1000),
      })
      .then(
        () => true,
        () => false,
      );
    this.last = { at: now, value };
    return value;
  }
}
