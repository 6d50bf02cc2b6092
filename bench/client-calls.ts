/**
 * Client micro-benchmark: the gateway's CPU per call (µs, this process only, from
 * process.cpuUsage) for each SDK client option and HTTP transport the hot path could use, each
 * next to the client the gateway built before (the baseline) in the same run. The stand-ins run in
 * a child process, so their CPU is not counted: dynalite for DynamoDB, bench/fast-sqs.ts for SQS
 * (local-aws-sqs spends tens of ms per call in its own bookkeeping), and a Graph-shaped HTTP server
 * answering `POST /{version}/{phone_number_id}/messages` with a wamid.
 *
 * Variants run in interleaved rounds (the machine is shared), and each figure is the median round.
 * Run: `npm run bench:clients` (env BENCH_CALLS per round, default 400; BENCH_ROUNDS, default 5).
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { CreateTableCommand, DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { KeepAliveHttpTransport } from '../src/http/keep-alive-transport';
import { ItemUpdates } from '../src/aws/item-updates';
import { QUIET_SDK_LOGGER } from '../src/aws/clients';
import { startAwsStandIns } from '../src/local/aws-standins';
import { startFastSqs } from './fast-sqs';
import { ask, nextMessage } from './ipc';

const CALLS = Number(process.env.BENCH_CALLS ?? 400);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const IN_FLIGHT = 4;
const TABLE = 'bench-calls';
const credentials = { accessKeyId: 'bench', secretAccessKey: 'bench' };

interface Endpoints {
  dynamodb: string;
  sqs: string;
  queueUrl: string;
  graph: string;
}

/** Child mode: the stand-ins, out of the measured process. */
async function serveStandIns(): Promise<void> {
  const aws = await startAwsStandIns();
  const sqs = await startFastSqs(['bench-calls']);
  const graph = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ messaging_product: 'whatsapp', contacts: [{ input: '15550001111', wa_id: '15550001111' }], messages: [{ id: 'wamid.HBgLMTU1NTAwMDExMTEVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA' }] }));
    });
  });
  graph.keepAliveTimeout = 65_000;
  await new Promise<void>((done) => graph.listen(0, '127.0.0.1', done));
  const endpoints: Endpoints = {
    dynamodb: aws.endpoints.dynamodb,
    sqs: sqs.endpoint,
    queueUrl: sqs.queueUrl('bench-calls'),
    graph: `http://127.0.0.1:${(graph.address() as AddressInfo).port}`,
  };
  process.send?.({ type: 'ready', endpoints });
  await nextMessage(process, 'stop');
  graph.close();
  await sqs.close();
  await aws.stop();
  process.exit(0);
}

type Call = (i: number) => Promise<unknown>;

/** CPU µs of this process per call, `count` calls with IN_FLIGHT at a time. */
async function cpuMicrosPerCall(call: Call, count: number): Promise<number> {
  const before = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < count) await call(next++);
    }),
  );
  const used = process.cpuUsage(before);
  return (used.user + used.system) / count;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function compare(title: string, variants: Array<[string, Call]>): Promise<void> {
  for (const [, call] of variants) await cpuMicrosPerCall(call, Math.min(100, CALLS)); // warm-up: JIT, sockets, credentials
  const figures = variants.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [v, [, call]] of variants.entries()) figures[v]!.push(await cpuMicrosPerCall(call, CALLS));
  }
  const baseline = median(figures[0]!);
  process.stdout.write(`\n${title}   (load average ${loadavg()[0]!.toFixed(1)})\n`);
  for (const [v, [name]] of variants.entries()) {
    const us = median(figures[v]!);
    process.stdout.write(`  ${name.padEnd(58)} ${us.toFixed(0).padStart(6)} µs/call   ${v === 0 ? 'baseline' : `${(((us - baseline) / baseline) * 100).toFixed(0).padStart(4)}%`}\n`);
  }
}

interface ClientOptions {
  cacheMiddleware?: boolean;
  quietLogger?: boolean;
  md5Off?: boolean;
}

/** The client configuration each variant differs by, over what every client shares. */
function clientConfig(endpoint: string, options: ClientOptions) {
  return {
    region: 'us-east-1',
    endpoint,
    credentials,
    ...(options.cacheMiddleware ? { cacheMiddleware: true } : {}),
    ...(options.quietLogger ? { logger: QUIET_SDK_LOGGER } : {}),
  };
}

const dynamo = (endpoint: string, options: ClientOptions = {}) => new DynamoDBClient(clientConfig(endpoint, options));
const sqsClient = (endpoint: string, options: ClientOptions = {}) => new SQSClient({ ...clientConfig(endpoint, options), ...(options.md5Off ? { md5: false } : {}) });

async function main(): Promise<void> {
  const child = fork(__filename, ['standins'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const { endpoints } = await nextMessage<{ endpoints: Endpoints }>(child, 'ready');
  process.stdout.write(`client micro-benchmark: ${CALLS} calls per round, ${IN_FLIGHT} in flight, ${ROUNDS} rounds, median round; CPU of this process only\n`);

  const setup = dynamo(endpoints.dynamodb);
  await setup.send(new CreateTableCommand({ TableName: TABLE, BillingMode: 'PAY_PER_REQUEST', AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }], KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }] }));

  // A lease-style conditional write, like the dedupe claim and the outbound record's settle.
  const update = (i: number) => ({
    TableName: TABLE,
    Key: { pk: `msg#106540352242922#wamid.${i % 50}` },
    UpdateExpression: 'SET #status = :status, #leaseUntil = :lease, #attempts = if_not_exists(#attempts, :zero) + :one',
    ConditionExpression: 'attribute_not_exists(pk) OR #leaseUntil < :now OR #status = :status',
    ExpressionAttributeNames: { '#status': 'status', '#leaseUntil': 'leaseUntil', '#attempts': 'attempts' },
    ExpressionAttributeValues: { ':status': 'INPROGRESS', ':lease': Date.now() + 30_000, ':now': Number.MAX_SAFE_INTEGER, ':zero': 0, ':one': 1 },
  });
  const documents = DynamoDBDocumentClient.from(dynamo(endpoints.dynamodb), { marshallOptions: { removeUndefinedValues: true } });
  const quietDocuments = DynamoDBDocumentClient.from(dynamo(endpoints.dynamodb, { quietLogger: true }), { marshallOptions: { removeUndefinedValues: true } });
  const lowLevel = (client: DynamoDBClient) => (i: number) => {
    const input = update(i);
    return client.send(
      new UpdateItemCommand({ ...input, Key: marshall(input.Key), ExpressionAttributeValues: marshall(input.ExpressionAttributeValues, { removeUndefinedValues: true }) }),
    );
  };
  const cachedLowLevel = dynamo(endpoints.dynamodb, { cacheMiddleware: true });
  const cachedQuietLowLevel = dynamo(endpoints.dynamodb, { cacheMiddleware: true, quietLogger: true });
  await compare('DynamoDB UpdateItem (conditional)', [
    ['DocumentClient, as the gateway built it', (i) => documents.send(new UpdateCommand(update(i)))],
    ['DocumentClient, logger without info', (i) => quietDocuments.send(new UpdateCommand(update(i)))],
    ['DynamoDBClient + marshall, no cache', lowLevel(dynamo(endpoints.dynamodb))],
    ['DynamoDBClient + marshall, logger w/o info, no cache', lowLevel(dynamo(endpoints.dynamodb, { quietLogger: true }))],
    ['DynamoDBClient + marshall, cacheMiddleware', lowLevel(cachedLowLevel)],
    ['DynamoDBClient + marshall, cacheMiddleware + logger w/o info', lowLevel(cachedQuietLowLevel)],
  ]);

  // A contact-state write: a whole item, conditioned on the version read (src/conversation/contact-store.ts).
  const put = (i: number) => ({
    TableName: TABLE,
    Item: { pk: `contact#bench#ct_${i}`, lineId: 'bench', contactId: `ct_${i}`, waId: '15550001111', waIdKey: `bench#${i}`, windowOpenUntil: Date.now() + 86_400_000, lastInboundAt: Date.now(), version: 1, updatedAt: new Date().toISOString() },
    ConditionExpression: 'attribute_not_exists(pk) OR version >= :v',
    ExpressionAttributeValues: { ':v': 0 },
  });
  const cachedItems = new ItemUpdates(quietDocuments, cachedQuietLowLevel);
  await compare('DynamoDB PutItem (conditional, contact-state shape)', [
    ['DocumentClient, logger without info (as before)', (i) => quietDocuments.send(new PutCommand(put(i)))],
    ['ItemUpdates.put on the cached client (as now)', (i) => cachedItems.put(put(i))],
  ]);

  const batch = (i: number) =>
    new SendMessageBatchCommand({
      QueueUrl: endpoints.queueUrl,
      Entries: [{ Id: '0', MessageBody: JSON.stringify({ v: 1, body: 'x'.repeat(1800), i }) }],
    });
  const signalled = (client: SQSClient) => (i: number) => client.send(batch(i), { abortSignal: AbortSignal.timeout(30_000) });
  const plain = (client: SQSClient) => (i: number) => client.send(batch(i));
  await compare('SQS SendMessageBatch (1 entry, ~2 KB)', [
    ['SQSClient, as the gateway built it (abortSignal per call)', signalled(sqsClient(endpoints.sqs))],
    ['md5: false', signalled(sqsClient(endpoints.sqs, { md5Off: true }))],
    ['logger without info', signalled(sqsClient(endpoints.sqs, { quietLogger: true }))],
    ['md5: false + logger without info', signalled(sqsClient(endpoints.sqs, { md5Off: true, quietLogger: true }))],
    ['cacheMiddleware, no per-call options (no abortSignal)', plain(sqsClient(endpoints.sqs, { cacheMiddleware: true }))],
    ['md5: false + logger w/o info, no per-call options, no cache', plain(sqsClient(endpoints.sqs, { md5Off: true, quietLogger: true }))],
    ['all three, no per-call options', plain(sqsClient(endpoints.sqs, { cacheMiddleware: true, md5Off: true, quietLogger: true }))],
  ]);

  const transport = new KeepAliveHttpTransport();
  const url = `${endpoints.graph}/v25.0/106540352242922/messages`;
  const headers = { authorization: 'Bearer bench-token', 'content-type': 'application/json' };
  const body = (i: number) => JSON.stringify({ messaging_product: 'whatsapp', to: '15550001111', type: 'text', text: { body: `reply ${i}` }, biz_opaque_callback_data: `out_${i}` });
  await compare('HTTP POST (Graph send shape, response read and parsed)', [
    ['global fetch, as before', async (i) => JSON.parse(await (await fetch(url, { method: 'POST', headers, body: body(i), redirect: 'manual', signal: AbortSignal.timeout(10_000) })).text())],
    ['KeepAliveHttpTransport (http.request, keep-alive agent)', async (i) => JSON.parse((await transport.exchange({ method: 'POST', url, headers, body: body(i), signal: AbortSignal.timeout(10_000) })).text)],
  ]);

  transport.destroy();
  await ask(child, { type: 'stop' }, 'never').catch(() => undefined);
}

if (process.argv[2] === 'standins') void serveStandIns();
else
  main().then(
    () => process.exit(0),
    (error) => {
      process.stderr.write(`${(error as Error).stack}\n`);
      process.exit(1);
    },
  );
