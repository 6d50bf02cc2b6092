import { ChangeMessageVisibilityCommand, DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs';
import { startFastSqs, type FastSqs } from '../../bench/fast-sqs';
import { createRegistry } from '../../src/observability/metrics';
import { DeadLetterQueue, DlqParker } from '../../src/queue/dlq';
import { stringAttributes } from '../../src/queue/message';

/**
 * A FIFO DLQ on an SQS that holds groups as SQS does (bench/fast-sqs.ts): no message of a group is
 * handed out while one of it is in flight, and a group's head comes back first when released.
 * local-aws-sqs does not hold groups, so only this shows what operators see on real SQS.
 */
describe('FIFO DLQ: every parked message is reachable, not only the head of each conversation', () => {
  let fast: FastSqs;
  let sqs: SQSClient;
  let run = 0;
  const conversations = ['106540352242922:16505550001', '106540352242922:16505550002', '106540352242922:16505550003'];
  const ingress = stringAttributes({ receivedAt: '2026-01-01T00:00:00.000Z', bodySha256: 'ab'.repeat(32) });

  beforeAll(async () => {
    const names = [1, 2, 3, 4, 5].flatMap((i) => [`main-${i}.fifo`, `dlq-${i}.fifo`]);
    fast = await startFastSqs(names);
    sqs = new SQSClient({ region: 'us-east-1', endpoint: fast.endpoint, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  });
  afterAll(async () => {
    sqs.destroy();
    await fast.close();
  });

  function queues() {
    run += 1;
    return { queueUrl: fast.queueUrl(`main-${run}.fifo`), dlqUrl: fast.queueUrl(`dlq-${run}.fifo`) };
  }

  const receive = async (queueUrl: string, visibility = 30): Promise<Message[]> =>
    (await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: visibility, MessageSystemAttributeNames: ['All'], MessageAttributeNames: ['All'] })))
      .Messages ?? [];

  /** As SQS's redrive policy leaves them (maxReceiveCount): in their conversation's group, with no parking record. Returns the DLQ ids in order. */
  async function movedBySqs(dlqUrl: string, conversation: string, count: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const out = await sqs.send(
        new SendMessageCommand({ QueueUrl: dlqUrl, MessageBody: `${conversation}#${i}`, MessageAttributes: ingress, MessageGroupId: conversation, MessageDeduplicationId: `${conversation}-${i}-${run}` }),
      );
      ids.push(out.MessageId!);
    }
    return ids;
  }

  it('the stand-in holds a group as SQS does: nothing behind an in-flight head, and the head again once released', async () => {
    const { dlqUrl } = queues();
    await movedBySqs(dlqUrl, conversations[0]!, 3);
    const [head] = await receive(dlqUrl);
    expect(head?.Body).toBe(`${conversations[0]}#0`);
    expect(await receive(dlqUrl)).toEqual([]);
    await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: dlqUrl, ReceiptHandle: head!.ReceiptHandle!, VisibilityTimeout: 0 }));
    // Releasing does not reach behind the head: it comes back first. Only its delete frees #1.
    const again = await receive(dlqUrl);
    expect(again.map((m) => m.Body)).toEqual([`${conversations[0]}#0`]);
    // The first receipt handle is stale now: SQS refuses it.
    await expect(sqs.send(new DeleteMessageCommand({ QueueUrl: dlqUrl, ReceiptHandle: head!.ReceiptHandle! }))).rejects.toThrow(/receipt handle/i);
  });

  it('list and show reach every message of every conversation, with stable ids, and redrive <id> reaches one behind its head', async () => {
    const { queueUrl, dlqUrl } = queues();
    const moved = new Map<string, string[]>();
    for (const conversation of conversations) moved.set(conversation, await movedBySqs(dlqUrl, conversation, 3));
    // Two events of the first conversation parked by the worker.
    const parker = new DlqParker({ sqs, dlqUrl, registry: createRegistry({ defaultMetrics: false }) });
    for (const wamid of ['wamid.P1', 'wamid.P2']) {
      await parker.park({ body: `parked ${wamid}`, attributes: ingress, reason: 'bird_rejected_422', eventKey: `msg#106540352242922#${wamid}`, groupId: conversations[0] });
    }
    const dlq = new DeadLetterQueue({ sqs, queueUrl, dlqUrl, waitTimeSeconds: 0 });

    const entries = await dlq.list();
    const bodies = (list: { body: string }[]) => list.map((e) => e.body).sort();
    const expected = [...conversations.flatMap((c) => [0, 1, 2].map((i) => `${c}#${i}`)), 'parked wamid.P1', 'parked wamid.P2'].sort();
    expect(bodies(entries)).toEqual(expected);
    for (const entry of entries) expect(entry.groupId).toBe(entry.body.startsWith('parked') ? conversations[0] : entry.body.split('#')[0]);
    expect(entries.filter((e) => e.reason === 'bird_rejected_422').map((e) => e.eventKey).sort()).toEqual(['msg#106540352242922#wamid.P1', 'msg#106540352242922#wamid.P2']);

    // A second listing sees the same messages under the same ids: nothing is hidden behind a hold any more.
    const again = await dlq.list();
    expect(again.map((e) => e.id).sort()).toEqual(entries.map((e) => e.id).sort());

    // show: the last message of the third conversation, by its listed id and by the id SQS gave it.
    const last = entries.find((e) => e.body === `${conversations[2]}#2`)!;
    expect((await dlq.show(last.id))?.body).toBe(last.body);
    expect((await dlq.show(moved.get(conversations[2]!)![2]!))?.id).toBe(last.id);

    // redrive <id> of a message behind its conversation's head; then the console's redrive by reason (one id at a time).
    const behind = entries.find((e) => e.body === `${conversations[1]}#1`)!;
    const result = await dlq.redrive({ id: behind.id });
    expect(result).toEqual({ redriven: [behind.id], notDeleted: [], failed: [] });
    for (const entry of entries.filter((e) => e.reason === 'bird_rejected_422')) {
      expect((await dlq.redrive({ id: entry.id })).redriven).toEqual([entry.id]);
    }
    const main: Message[] = [];
    for (let m = await receive(queueUrl); m.length > 0; m = await receive(queueUrl)) {
      main.push(...m);
      for (const message of m) await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle! }));
    }
    expect(main.map((m) => [m.Body, m.Attributes?.MessageGroupId]).sort()).toEqual(
      [
        [`${conversations[1]}#1`, conversations[1]],
        ['parked wamid.P1', conversations[0]],
        ['parked wamid.P2', conversations[0]],
      ].sort(),
    );
    // The parking attributes are gone from the redriven copies; the event key stays.
    expect(Object.keys(main.find((m) => m.Body === 'parked wamid.P1')!.MessageAttributes ?? {}).sort()).toEqual(['bodySha256', 'eventKey', 'receivedAt']);
    expect(Object.keys(main.find((m) => m.Body === `${conversations[1]}#1`)!.MessageAttributes ?? {}).sort()).toEqual(['bodySha256', 'receivedAt']);
    expect(bodies(await dlq.list())).toEqual(expected.filter((b) => ![`${conversations[1]}#1`, 'parked wamid.P1', 'parked wamid.P2'].includes(b)));
  });

  it('a moved message keeps the retention of its original: once past it, a scan deletes it as SQS would have', async () => {
    const { queueUrl, dlqUrl } = queues();
    await movedBySqs(dlqUrl, conversations[0]!, 2);
    const parker = new DlqParker({ sqs, dlqUrl, registry: createRegistry({ defaultMetrics: false }) });
    await parker.park({ body: 'parked alone', attributes: ingress, reason: 'bird_rejected_422', groupId: conversations[0] });
    const today = new DeadLetterQueue({ sqs, queueUrl, dlqUrl, waitTimeSeconds: 0 });
    expect((await today.list()).map((e) => e.body).sort()).toEqual([`${conversations[0]}#0`, `${conversations[0]}#1`, 'parked alone']);
    // The stand-in reports SQS's default retention, 4 days: a day past it, the moved copies are gone.
    const later = new DeadLetterQueue({ sqs, queueUrl, dlqUrl, waitTimeSeconds: 0, now: () => Date.now() + 5 * 86_400_000 });
    // The message parked in its own group was never moved: its retention is SQS's to apply, not the scan's.
    expect((await later.list()).map((e) => e.body)).toEqual(['parked alone']);
    expect((await today.list()).map((e) => e.body)).toEqual(['parked alone']);
  });

  it('redrive --all puts a conversation the redrive policy moved back in its order', async () => {
    const { queueUrl, dlqUrl } = queues();
    await movedBySqs(dlqUrl, conversations[0]!, 4);
    await movedBySqs(dlqUrl, conversations[1]!, 2);
    const dlq = new DeadLetterQueue({ sqs, queueUrl, dlqUrl, waitTimeSeconds: 0 });
    const result = await dlq.redrive({ all: true });
    expect(result.redriven).toHaveLength(6);
    expect(result.failed).toEqual([]);
    // Read the main queue as a worker would: one group at a time, each message deleted when done.
    const order: string[] = [];
    for (let m = await receive(queueUrl); m.length > 0; m = await receive(queueUrl)) {
      for (const message of m) {
        order.push(message.Body!);
        await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle! }));
      }
    }
    expect(order.filter((b) => b.startsWith(conversations[0]!))).toEqual([0, 1, 2, 3].map((i) => `${conversations[0]}#${i}`));
    expect(order.filter((b) => b.startsWith(conversations[1]!))).toEqual([0, 1].map((i) => `${conversations[1]}#${i}`));
    expect(await dlq.list()).toEqual([]);
  });
});
