import { ChangeMessageVisibilityCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { createAwsClients, type AwsClients } from '../../src/aws/clients';
import { startAwsStandIns, type AwsStandIns } from '../../src/local/aws-standins';

/** What the FIFO stand-in does and does not do, as the worker's sequencing relies on it. */
describe('FIFO stand-in (local-aws-sqs)', () => {
  let standIns: AwsStandIns;
  let clients: AwsClients;
  beforeAll(async () => {
    standIns = await startAwsStandIns({ fifo: true, queueName: 'fifo-probe', maxReceiveCount: 5 });
    clients = createAwsClients({ region: 'us-east-1', endpoints: standIns.endpoints, forcePathStyle: true, credentials: standIns.credentials });
  });
  afterAll(async () => {
    clients.destroy();
    await standIns.stop();
  });

  const receive = (queueUrl: string, visibility = 30) =>
    clients.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        VisibilityTimeout: visibility,
        MessageSystemAttributeNames: ['All'],
        AttributeNames: ['All'],
      }),
    );

  it('names the queues .fifo, keeps a group in send order, dedupes by id, and does NOT hold a group while a message is in flight', async () => {
    expect(standIns.queueUrl).toMatch(/fifo-probe\.fifo$/);
    expect(standIns.dlqUrl).toMatch(/fifo-probe-dlq\.fifo$/);
    const send = (body: string, dedup = body) =>
      clients.sqs.send(new SendMessageCommand({ QueueUrl: standIns.queueUrl, MessageBody: body, MessageGroupId: 'g', MessageDeduplicationId: dedup }));
    const first = await send('one');
    const again = await send('one');
    expect(again.MessageId).toBe(first.MessageId);
    await send('two');
    const a = await receive(standIns.queueUrl);
    expect(a.Messages?.map((m) => [m.Body, m.Attributes?.MessageGroupId])).toEqual([
      ['one', 'g'],
      ['two', 'g'],
    ]);
    // Real SQS would not hand out 'two' while 'one' is in flight; this stand-in does once 'two' is visible.
    // (It also counts a visibility change as a receive: maxReceiveCount is reached sooner than on SQS.)
    await clients.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: standIns.queueUrl, ReceiptHandle: a.Messages![1]!.ReceiptHandle!, VisibilityTimeout: 0 }));
    const b = await receive(standIns.queueUrl);
    expect(b.Messages?.map((m) => m.Body)).toEqual(['two']);
  });
});
