import { createHash } from 'node:crypto';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { DeleteCommand } from '@aws-sdk/lib-dynamodb';
import { echoResponder } from '../../src/local/bird-standin';
import { DynamoOutboundStore } from '../../src/outbound/dynamo-outbound-store';
import { outboundId } from '../../src/outbound/record';
import { waitFor } from '../support/child';
import { APP_SECRET } from '../support/ingress';
import { LINES, countByKey, lineFor, startRemoteStandIns, startWorkerRig, textMessage, webhookPayload, type RemoteStandIns, type WorkerRig } from '../support/worker';
import { eventHandle } from '../../src/privacy/pseudonyms';

const DOC = LINES.doc.phoneNumberId;
const CONTACT = '16505551234';

let remote: RemoteStandIns;
let rig: WorkerRig;
let store: DynamoOutboundStore;

beforeAll(async () => {
  remote = await startRemoteStandIns();
  rig = await startWorkerRig(remote, { outbound: true, lines: [lineFor('doc', remote.bird.flowUrl())] });
  store = new DynamoOutboundStore({ documents: rig.aws.clients.documents, tableName: rig.aws.names.outboundTable, retentionDays: 1 });
  remote.graph.messages.setWebhookTarget(`${rig.ingress.url}/webhooks/whatsapp`, APP_SECRET);
});
afterAll(async () => {
  await rig?.stop();
  await remote?.stop();
});
beforeEach(() => {
  remote.reset();
  remote.graph.messages.reset();
  remote.bird.respondWith(undefined);
});

const text = (body: string) => ({ type: 'text', text: { body } });
const sendsTo = (to: string) => remote.graph.messages.sends().filter((s) => s.to === to && s.outcome === 'accepted');
const replyId = (eventKey: string, index: number) => outboundId(LINES.doc.lineId, `reply:${eventKey}:${index}`);

describe("a Flow's synchronous replies, end to end on the real acceptor, sender and Graph stand-in", () => {
  it('the echo AI answers: the reply reaches Graph once, to the contact, and its record ends read', async () => {
    remote.bird.respondWith(echoResponder);
    const key = `msg#${DOC}#wamid.echo-1`;
    expect(await rig.post(webhookPayload([{ changes: [{ phoneNumberId: DOC, messages: [textMessage('wamid.echo-1', 'where is my order?')] }] }]))).toBe(200);
    await waitFor(async () => (await store.get(replyId(key, 0)))?.status === 'read', 15_000, 'the reply read');
    const sends = remote.graph.messages.sends().filter((s) => s.callbackData === replyId(key, 0));
    expect(sends.map((s) => [s.to, s.outcome, s.body.text])).toEqual([[CONTACT, 'accepted', { body: 'echo: where is my order?' }]]);
    expect(await store.get(replyId(key, 0))).toMatchObject({ source: 'flow_reply', idempotencyKey: `reply:${key}:0`, lineId: LINES.doc.lineId });
  });

  it('a redriven inbound event produces no second reply, even when Bird answers differently the second time', async () => {
    const key = `msg#${DOC}#wamid.redrive-1`;
    remote.bird.respondWith((_body, call) =>
      call.count === 1 ? { replies: [text('first answer, part 1'), text('first answer, part 2')] } : { replies: [text('second answer'), text('x'), text('y')] },
    );
    const body = webhookPayload([{ changes: [{ phoneNumberId: DOC, messages: [textMessage('wamid.redrive-1', 'hello?')] }] }]);
    expect(await rig.post(body)).toBe(200);
    await waitFor(async () => (await store.get(replyId(key, 1)))?.status === 'read', 15_000, 'both replies read');
    expect(sendsTo(CONTACT).map((s) => (s.body.text as { body: string }).body)).toEqual(['first answer, part 1', 'first answer, part 2']);

    // A worker that died after the replies were queued and before COMPLETED leaves a claim that lapses
    // (removed here, which claims alike); the message used up its receives and SQS moved it to the DLQ,
    // as the redrive policy does (no reason attribute). The operator redrives it.
    await rig.aws.clients.documents.send(new DeleteCommand({ TableName: rig.config.dynamodb.dedupeTable, Key: { pk: eventHandle(key) } }));
    await rig.aws.clients.sqs.send(
      new SendMessageCommand({
        QueueUrl: rig.aws.standIns.dlqUrl,
        MessageBody: body,
        MessageAttributes: {
          receivedAt: { DataType: 'String', StringValue: new Date().toISOString() },
          requestId: { DataType: 'String', StringValue: 'redrive-test' },
          bodySha256: { DataType: 'String', StringValue: createHash('sha256').update(body).digest('hex') },
        },
      }),
    );
    expect((await rig.dlq.redrive({ all: true })).redriven).toHaveLength(1);
    // Bird hears the event again (same Idempotency-Key) and answers differently…
    await waitFor(async () => (countByKey(remote.bird.received()).get(key) ?? 0) === 2, 15_000, 'the redriven event at Bird');
    await waitFor(async () => (await rig.metric('wa_ingress_flow_replies_total', { outcome: 'superseded' })) === 3, 10_000, 'the second answer dropped');
    await waitFor(async () => (await rig.queueDepth()) === 0, 10_000, 'the redriven message done');
    // …and nothing more reaches the user: no second reply, no reply for the extra index.
    await new Promise((r) => setTimeout(r, 500));
    expect(sendsTo(CONTACT).map((s) => (s.body.text as { body: string }).body)).toEqual(['first answer, part 1', 'first answer, part 2']);
    expect(await store.get(replyId(key, 2))).toBeUndefined();
    expect(await rig.metric('wa_ingress_flow_replies_total', { outcome: 'queued' })).toBe(3);
  });

  it('an invalid reply is not sent and the event still completes; the valid ones go out in order', async () => {
    const key = `msg#${DOC}#wamid.invalid-1`;
    remote.bird.respondWith(() => ({ replies: [text('one'), { type: 'text', text: { body: 'x'.repeat(4097) } }, text('three')] }));
    expect(await rig.post(webhookPayload([{ changes: [{ phoneNumberId: DOC, messages: [textMessage('wamid.invalid-1')] }] }]))).toBe(200);
    await waitFor(async () => (await store.get(replyId(key, 2)))?.status === 'read', 15_000, 'the third reply read');
    expect(sendsTo(CONTACT).map((s) => (s.body.text as { body: string }).body)).toEqual(['one', 'three']);
    expect(await store.get(replyId(key, 1))).toBeUndefined();
    expect(await rig.metric('wa_ingress_flow_replies_total', { outcome: 'invalid' })).toBe(1);
    expect(rig.logs.text()).toContain('"event":"flow_reply_invalid"');
    expect(rig.logs.text()).toContain('text.body');
    await waitFor(async () => (await rig.queueDepth()) === 0, 10_000, 'the message done');
  });
});
