import { ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { startFastSqs, type FastSqs } from '../../bench/fast-sqs';

/**
 * bench:e2e measures the ingress request alone by holding the gateway's inbound queue back
 * (bench/fast-sqs.ts `hold`): a held queue hands nothing to any receive, keeps what is sent, and
 * on release gives it to the long poll already waiting.
 */
describe('fast SQS stand-in: a held queue', () => {
  let fast: FastSqs;
  let sqs: SQSClient;

  beforeAll(async () => {
    fast = await startFastSqs(['held', 'other']);
    sqs = new SQSClient({ region: 'us-east-1', endpoint: fast.endpoint, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  });
  afterAll(async () => {
    sqs.destroy();
    await fast.close();
  });

  const receive = (name: string, waitSeconds: number) =>
    sqs.send(new ReceiveMessageCommand({ QueueUrl: fast.queueUrl(name), MaxNumberOfMessages: 10, WaitTimeSeconds: waitSeconds })).then((r) => (r.Messages ?? []).map((m) => m.Body));

  it('receives nothing while held, other queues unaffected, and a waiting long poll gets the messages on release', async () => {
    fast.hold('held', true);
    await sqs.send(new SendMessageCommand({ QueueUrl: fast.queueUrl('held'), MessageBody: 'first' }));
    await sqs.send(new SendMessageCommand({ QueueUrl: fast.queueUrl('other'), MessageBody: 'elsewhere' }));

    expect(await receive('held', 0)).toEqual([]);
    expect(await receive('other', 0)).toEqual(['elsewhere']);

    const waiting = receive('held', 5);
    await new Promise((r) => setTimeout(r, 100));
    await sqs.send(new SendMessageCommand({ QueueUrl: fast.queueUrl('held'), MessageBody: 'second' }));
    const started = Date.now();
    fast.hold('held', false);
    expect(await waiting).toEqual(['first', 'second']);
    // Answered on release, not when the 5 s wait ran out.
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
