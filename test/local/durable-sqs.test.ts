import { ChangeMessageVisibilityBatchCommand, ChangeMessageVisibilityCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createAwsClients, type AwsClients } from '../../src/aws/clients';
import { embeddedAwsSettingsFor } from '../../src/config/embedded-state';
import type { AwsStandIns, startAwsStandIns as Start } from '../../src/local/aws-standins';

/**
 * The embedded default's queue (fauxqs on disk, in its child process). The child's entry must be
 * JavaScript, so this loads the built stand-ins (`npm test` builds dist/ first).
 */
const { startAwsStandIns } = require(resolve(__dirname, '../../dist/local/aws-standins.js')) as { startAwsStandIns: typeof Start };

let dataDir: string;
let standIns: AwsStandIns;
let embedded: AwsClients;
let plain: AwsClients;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'wa-ingress-durable-sqs-'));
  standIns = await startAwsStandIns({ dataDir, fifo: true, durableSqs: true, queueName: 'probe' });
  embedded = createAwsClients({ region: 'us-east-1', ...embeddedAwsSettingsFor(standIns.endpoints) });
  plain = createAwsClients({ region: 'us-east-1', endpoints: standIns.endpoints, forcePathStyle: true, credentials: standIns.credentials });
}, 30_000);

afterAll(async () => {
  embedded?.destroy();
  plain?.destroy();
  await standIns?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function sendAndReceive(clients: AwsClients, id: string): Promise<string> {
  await clients.sqs.send(new SendMessageCommand({ QueueUrl: standIns.queueUrl, MessageBody: id, MessageGroupId: id, MessageDeduplicationId: id }));
  const { Messages } = await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: standIns.queueUrl, MaxNumberOfMessages: 10 }));
  const message = Messages?.find((m) => m.Body === id);
  if (!message) throw new Error(`${id} not received`);
  return message.ReceiptHandle!;
}

describe('the embedded default’s durable queue', () => {
  it('a release (visibility 0) from the embedded clients hands the message back, where fauxqs alone fails it', async () => {
    const handle = await sendAndReceive(embedded, 'released');
    const result = await embedded.sqs.send(new ChangeMessageVisibilityBatchCommand({ QueueUrl: standIns.queueUrl, Entries: [{ Id: '0', ReceiptHandle: handle, VisibilityTimeout: 0 }] }));
    expect(result.Failed ?? []).toEqual([]);
    await new Promise((r) => setTimeout(r, 1_300));
    const { Messages } = await embedded.sqs.send(new ReceiveMessageCommand({ QueueUrl: standIns.queueUrl, MaxNumberOfMessages: 10 }));
    expect(Messages?.map((m) => m.Body)).toContain('released');

    // The bug the embedded clients step around (fauxqs 2.4.1 with persistence): if this starts to pass, drop releaseAfter.
    const bare = await sendAndReceive(plain, 'bare-release');
    // (500 on the first attempt, then 400 on the SDK's retries: the receipt handle is gone, and so is the message.)
    await expect(plain.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: standIns.queueUrl, ReceiptHandle: bare, VisibilityTimeout: 0 }))).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 1_300));
    const after = await plain.sqs.send(new ReceiveMessageCommand({ QueueUrl: standIns.queueUrl, MaxNumberOfMessages: 10 }));
    expect(after.Messages?.map((m) => m.Body) ?? []).not.toContain('bare-release');
  }, 20_000);

  it('listens on loopback only, although fauxqs asks for every interface', async () => {
    const port = Number(new URL(standIns.endpoints.sqs).port);
    const outside = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
    if (!outside) return; // no non-loopback address on this machine: nothing to reach from outside
    const reached = await new Promise<boolean>((done) => {
      const socket = connect(port, outside.address, () => (socket.destroy(), done(true)));
      socket.on('error', () => done(false));
    });
    expect(reached).toBe(false);
  });
});
