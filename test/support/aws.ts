import { CreateQueueCommand, DeleteMessageBatchCommand, PurgeQueueCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import { createAwsClients, type AwsClients } from '../../src/aws/clients';
import { ensureResources } from '../../src/aws/resources';
import { HIGH_THROUGHPUT_FIFO_ATTRIBUTES } from '../../src/queue/fifo';
import { startAwsStandIns, type AwsStandIns, type AwsStandInOptions } from '../../src/local/aws-standins';

export interface AwsHarness {
  standIns: AwsStandIns;
  clients: AwsClients;
  names: { linesTable: string; dedupeTable: string; bucket: string; outboundTable: string; contactsTable: string };
  /** Receive (and delete) everything on a queue until it stays empty. */
  drainQueue(queueUrl?: string): Promise<Message[]>;
  purge(queueUrl?: string): Promise<void>;
  stop(): Promise<void>;
}

/** Real stand-ins, real SDK clients and the resources the app expects. */
export async function startAwsHarness(options: AwsStandInOptions = {}): Promise<AwsHarness> {
  const standIns = await startAwsStandIns(options);
  const clients = createAwsClients({ region: 'us-east-1', endpoints: standIns.endpoints, forcePathStyle: true, credentials: standIns.credentials });
  const names = { linesTable: 'lines', dedupeTable: 'dedupe', bucket: 'wa-test', outboundTable: 'outbound', contactsTable: 'contacts' };
  await ensureResources(clients, names);
  return {
    standIns,
    clients,
    names,
    async drainQueue(queueUrl = standIns.queueUrl) {
      const all: Message[] = [];
      for (;;) {
        const out = await clients.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 0,
            MessageAttributeNames: ['All'],
            MessageSystemAttributeNames: ['All'],
          }),
        );
        const messages = out.Messages ?? [];
        if (messages.length === 0) return all;
        all.push(...messages);
        await clients.sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
          }),
        );
      }
    },
    async purge(queueUrl = standIns.queueUrl) {
      await clients.sqs.send(new PurgeQueueCommand({ QueueUrl: queueUrl }));
    },
    async stop() {
      clients.destroy();
      await standIns.stop();
    },
  };
}

/** A queue and its DLQ (redrive policy) of their own, so tests on one stand-in never share messages. */
export async function createQueuePair(
  sqs: SQSClient,
  name: string,
  options: { maxReceiveCount: number; visibilityTimeoutSeconds?: number; fifo?: boolean },
): Promise<{ queueUrl: string; dlqUrl: string }> {
  const suffix = options.fifo ? '.fifo' : '';
  const fifo = options.fifo ? HIGH_THROUGHPUT_FIFO_ATTRIBUTES : {};
  const dlq = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq${suffix}`, Attributes: { ...fifo } }));
  const main = await sqs.send(
    new CreateQueueCommand({
      QueueName: `${name}${suffix}`,
      Attributes: {
        ...fifo,
        ...(options.visibilityTimeoutSeconds !== undefined ? { VisibilityTimeout: String(options.visibilityTimeoutSeconds) } : {}),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: `arn:aws:sqs:us-east-1:000000000000:${name}-dlq${suffix}`, maxReceiveCount: options.maxReceiveCount }),
      },
    }),
  );
  return { queueUrl: main.QueueUrl!, dlqUrl: dlq.QueueUrl! };
}
