import { ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { startAwsStandIns, type AwsStandIns } from '../../src/local/aws-standins';
import { DeadLetterQueue, DlqParker, REDRIVE_POLICY_REASON } from '../../src/queue/dlq';
import { stringAttributes } from '../../src/queue/message';
import { createRegistry } from '../../src/observability/metrics';
import { formatEntry } from '../../src/cli/dlq';
import { createQueuePair } from '../support/aws';

/** The DLQ tools on FIFO queues keep each message's conversation (MessageGroupId). */
describe('DLQ park and redrive on FIFO queues', () => {
  let standIns: AwsStandIns;
  let sqs: SQSClient;
  beforeAll(async () => {
    standIns = await startAwsStandIns();
    sqs = new SQSClient({ region: 'us-east-1', endpoint: standIns.endpoints.sqs, credentials: standIns.credentials });
  });
  afterAll(async () => {
    sqs.destroy();
    await standIns.stop();
  });

  const body = JSON.stringify({ object: 'whatsapp_business_account', entry: [{ id: 'waba', changes: [{ field: 'messages', value: { metadata: { phone_number_id: '106540352242922' }, messages: [{ id: 'wamid.F', from: '16505551234' }] } }] }] });
  const group = '106540352242922:16505551234';
  const receive = async (queueUrl: string) =>
    (
      await sqs.send(
        new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 30, AttributeNames: ['All'], MessageSystemAttributeNames: ['All'], MessageAttributeNames: ['All'] }),
      )
    ).Messages ?? [];

  it('parks into the FIFO DLQ under the message group, and redrives with that group and a fresh dedup id', async () => {
    const { queueUrl, dlqUrl } = await createQueuePair(sqs, 'fifo-dlq', { maxReceiveCount: 5, fifo: true });
    // The original is still on the main queue with its dedup id (the body sha256), as within SQS's 5 minutes.
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body, MessageGroupId: group, MessageDeduplicationId: 'sha-of-body' }));
    const parker = new DlqParker({ sqs, dlqUrl, registry: createRegistry({ defaultMetrics: false }) });
    const attributes = stringAttributes({ receivedAt: '2026-01-01T00:00:00.000Z', bodySha256: 'sha-of-body' });
    await parker.park({ body, attributes, reason: 'bird_rejected_422', eventKey: 'msg#106540352242922#wamid.F', groupId: group });
    // A second event of the same message parked too: a fresh dedup id each time, so neither is dropped.
    await parker.park({ body, attributes, reason: 'media_expired', eventKey: 'msg#106540352242922#wamid.G', groupId: group });

    const dlq = new DeadLetterQueue({ sqs, queueUrl, dlqUrl, waitTimeSeconds: 0 });
    const entries = await dlq.list();
    expect(entries.map((e) => [e.reason, e.groupId])).toEqual([
      ['bird_rejected_422', group],
      ['media_expired', group],
    ]);
    // The operator sees the conversation with its contact masked.
    expect(formatEntry(entries[0]!)).toContain('group:      106540352242922:1650*****34');

    const result = await dlq.redrive({ id: entries[0]!.id });
    expect(result.redriven).toEqual([entries[0]!.id]);
    const main = await receive(queueUrl);
    expect(main.map((m) => [m.Body === body, m.Attributes?.MessageGroupId])).toEqual([
      [true, group],
      [true, group],
    ]);
    expect(main[1]!.Attributes?.MessageDeduplicationId).not.toBe('sha-of-body');
    // The parking attributes are gone; the redrive names its one event (eventKey) so only it is redone.
    expect(Object.keys(main[1]!.MessageAttributes ?? {}).sort()).toEqual(['bodySha256', 'eventKey', 'receivedAt']);
  });

  it('a message SQS moved to the FIFO DLQ (maxReceiveCount) keeps its group there and back', async () => {
    const { queueUrl, dlqUrl } = await createQueuePair(sqs, 'fifo-max', { maxReceiveCount: 1, fifo: true, visibilityTimeoutSeconds: 1 });
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body, MessageGroupId: group, MessageDeduplicationId: 'd1' }));
    await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, VisibilityTimeout: 1, WaitTimeSeconds: 0 }));
    const dlq = new DeadLetterQueue({ sqs, queueUrl, dlqUrl, waitTimeSeconds: 0 });
    let entries = await dlq.list();
    for (let i = 0; i < 30 && entries.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      entries = await dlq.list();
    }
    expect(entries.map((e) => [e.reason, e.groupId])).toEqual([[REDRIVE_POLICY_REASON, group]]);
    await dlq.redrive({ all: true });
    expect((await receive(queueUrl)).map((m) => m.Attributes?.MessageGroupId)).toEqual([group]);
  });
});
