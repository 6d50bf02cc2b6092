import { createServer } from 'node:http';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { createProducerSqsClient } from '../work/main/src/aws/clients';
(async () => {
  let conns = 0;
  const silent = createServer(() => undefined);
  silent.on('connection', () => { conns++; console.log('conn', conns, Date.now() - t0); });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  const endpoint = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
  const sqs = createProducerSqsClient({ region: 'us-east-1', endpoints: { sqs: endpoint }, forcePathStyle: true, credentials: { accessKeyId: 'x', secretAccessKey: 'y' } } as any, 400);
  const t0 = Date.now();
  try { await sqs.send(new SendMessageBatchCommand({ QueueUrl: endpoint + '/1/q', Entries: [{ Id: 'a', MessageBody: 'x' }] })); } catch (e: any) { console.log('err', e.name, Date.now() - t0, e.$metadata); }
  sqs.destroy(); silent.close(); process.exit(0);
})();
