import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { runDlqCli } from '../../src/cli/dlq';
import { runOutboundCli } from '../../src/cli/outbound';
import { createRegistry } from '../../src/observability/metrics';
import { DlqParker } from '../../src/queue/dlq';
import { encodeJob } from '../../src/outbound/job-message';
import { outboundId } from '../../src/outbound/record';
import { DynamoOutboundStore } from '../../src/outbound/dynamo-outbound-store';
import { startAwsHarness, type AwsHarness } from '../support/aws';

let aws: AwsHarness;
let env: NodeJS.ProcessEnv;
const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };

beforeAll(async () => {
  aws = await startAwsHarness();
  process.env.AWS_ACCESS_KEY_ID = aws.standIns.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = aws.standIns.credentials.secretAccessKey;
  env = {
    SQS_QUEUE_URL: aws.standIns.queueUrl,
    SQS_DLQ_URL: aws.standIns.dlqUrl,
    SQS_OUTBOUND_QUEUE_URL: aws.standIns.outboundQueueUrl,
    SQS_OUTBOUND_DLQ_URL: aws.standIns.outboundDlqUrl,
    DYNAMODB_OUTBOUND_TABLE: aws.names.outboundTable,
    AWS_ENDPOINT_URL_SQS: aws.standIns.endpoints.sqs,
    AWS_ENDPOINT_URL_DYNAMODB: aws.standIns.endpoints.dynamodb,
    AWS_REGION: 'us-east-1',
  };
});

afterAll(async () => {
  process.env.AWS_ACCESS_KEY_ID = saved.id;
  process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
  if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
  if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
  await aws.stop();
});

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { env, out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
}

const receive = async (queueUrl: string) =>
  (await aws.clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, AttributeNames: ['All'], MessageAttributeNames: ['All'] }))).Messages ?? [];

describe('npm run outbound', () => {
  it('send queues a text reply; get shows its status; the same --key is the same reply', async () => {
    const send = io();
    expect(await runOutboundCli(['send', 'line-cli', '16505551234', 'hello', 'from', 'the', 'cli', '--key', 'cli-1'], send.io)).toBe(0);
    const sent = JSON.parse(send.out[0]!) as { id: string; status: string };
    expect(sent).toEqual({ id: outboundId('line-cli', 'cli-1'), status: 'queued', duplicate: false });
    const [job] = await aws.drainQueue(aws.standIns.outboundQueueUrl);
    expect(JSON.parse(job!.Body!)).toMatchObject({ lineId: 'line-cli', to: '16505551234', source: 'cli', body: { type: 'text', text: { body: 'hello from the cli' } } });

    const get = io();
    expect(await runOutboundCli(['get', 'line-cli', sent.id], get.io)).toBe(0);
    expect(JSON.parse(get.out.join('\n'))).toMatchObject({ id: sent.id, status: 'queued', to: '16505551234' });
    const journey = io();
    expect(await runOutboundCli(['journey', 'line-cli', sent.id], journey.io)).toBe(0);
    expect(JSON.parse(journey.out.join('\n')).journey.map((j: { step: string }) => j.step)).toEqual(['queued']);

    const other = io();
    expect(await runOutboundCli(['send', 'line-cli', '16505551234', 'different', '--key', 'cli-1'], other.io)).toBe(1);
    expect(other.err.join('\n')).toMatch(/Idempotency key already used/);
    const missing = io();
    expect(await runOutboundCli(['get', 'other-line', sent.id], missing.io)).toBe(1);
    expect(await runOutboundCli(['send', 'line-cli'], io().io)).toBe(2);
  });

  it('dlq --queue outbound lists a parked reply and redrives it to the outbound FIFO queue in its group', async () => {
    const id = outboundId('line-cli', 'parked-1');
    const body = encodeJob(id, { lineId: 'line-cli', to: '16505550000', idempotencyKey: 'parked-1', source: 'api', body: { type: 'text', text: { body: 'x' } } });
    const parker = new DlqParker({ sqs: aws.clients.sqs, dlqUrl: aws.standIns.outboundDlqUrl, registry: createRegistry({ defaultMetrics: false }) });
    const dlqId = await parker.park({ body, attributes: {}, reason: 'outside_customer_service_window', eventKey: id, lineId: 'line-cli', fifo: { groupId: 'line-cli:16505550000', deduplicationId: 'park-1' } });

    const list = io();
    expect(await runDlqCli(['list', '--queue', 'outbound'], list.io)).toBe(0);
    expect(list.out.find((l) => l.startsWith(dlqId))?.split('\t').slice(0, 4)).toEqual([dlqId, 'outside_customer_service_window', id, 'line-cli']);
    const inbound = io();
    expect(await runDlqCli(['list'], inbound.io)).toBe(0);
    expect(inbound.out.some((l) => l.startsWith(dlqId))).toBe(false);

    const redrive = io();
    expect(await runDlqCli(['redrive', '--all', '--queue', 'outbound'], redrive.io)).toBe(0);
    expect(redrive.out).toContain(`redriven ${dlqId}`);
    const [back] = await receive(aws.standIns.outboundQueueUrl);
    expect(back?.Body).toBe(body);
    expect(back?.Attributes?.MessageGroupId).toBe('line-cli:16505550000');
    expect(await runDlqCli(['list', '--queue', 'sideways'], io().io)).toBe(2);
  });

  it('resend and mark-sent act on a reply parked send_uncertain: conditional, journaled with who and why, the parked job leaves the DLQ', async () => {
    const store = new DynamoOutboundStore({ documents: aws.clients.documents, tableName: aws.names.outboundTable, retentionDays: 14 });
    const parker = new DlqParker({ sqs: aws.clients.sqs, dlqUrl: aws.standIns.outboundDlqUrl, registry: createRegistry({ defaultMetrics: false }) });
    async function parkedUncertain(key: string) {
      const id = outboundId('line-cli', key);
      const request = { lineId: 'line-cli', to: '16505550001', idempotencyKey: key, source: 'api' as const, body: { type: 'text', text: { body: 'x' } } };
      await store.create({ id, lineId: 'line-cli', idempotencyKey: key, to: request.to, bodyHash: 'h', type: 'text', source: 'api', body: request.body });
      await store.claim(id, 5000);
      await store.markUncertain({ id, attempt: 1 }, undefined, 'timeout');
      const body = encodeJob(id, request);
      await parker.park({ body, attributes: {}, reason: 'send_uncertain', eventKey: id, lineId: 'line-cli', fifo: { groupId: 'line-cli:16505550001', deduplicationId: `park-${key}` } });
      return { id, body };
    }
    const operator = { ...env, USER: 'ops-anna' };
    const as = () => {
      const out = io();
      return { ...out, io: { ...out.io, env: operator } };
    };

    const resent = await parkedUncertain('uncertain-resend');
    expect(await runOutboundCli(['resend', 'line-cli', resent.id], as().io)).toBe(2);
    expect(await runOutboundCli(['resend', 'line-cli', resent.id, '--reason', 'the person says nothing came'], as().io)).toBe(0);
    const record = (await store.get(resent.id))!;
    expect(record).toMatchObject({ status: 'uncertain', retryAt: 0 });
    expect(record.journey.at(-1)).toMatchObject({ step: 'operator', detail: 'resend allowed by cli:ops-anna: the person says nothing came' });
    const [back] = await receive(aws.standIns.outboundQueueUrl);
    expect(back?.Body).toBe(resent.body);
    expect(back?.Attributes?.MessageGroupId).toBe('line-cli:16505550001');
    expect((await store.claim(resent.id, 5000)).claimed).toBe(true);
    // Decided already (and claimed since): a second decision changes nothing.
    const again = as();
    expect(await runOutboundCli(['mark-sent', 'line-cli', resent.id, '--reason', 'twice'], again.io)).toBe(1);
    expect(again.err.join('\n')).toMatch(/not parked uncertain/);

    const marked = await parkedUncertain('uncertain-mark');
    expect(await runOutboundCli(['mark-sent', 'line-cli', marked.id, '--reason', 'seen on 16505550001 phone'], as().io)).toBe(0);
    const settled = (await store.get(marked.id))!;
    expect(settled.status).toBe('sent');
    expect(settled.wamid).toBeUndefined();
    expect(settled.journey.at(-1)!.detail).toMatch(/^marked sent by cli:ops-anna: seen on 1650\*+01 phone/);
    const dlqLeft = io();
    expect(await runDlqCli(['list', '--queue', 'outbound'], dlqLeft.io)).toBe(0);
    expect(dlqLeft.out.join('\n')).not.toContain(marked.id);
    await aws.drainQueue(aws.standIns.outboundQueueUrl);
    expect(await runOutboundCli(['resend', 'other-line', marked.id, '--reason', 'x'], as().io)).toBe(1);
  });
});
