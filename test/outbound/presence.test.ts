import { waitFor } from '../support/child';
import {
  LINES,
  countByKey,
  lineFor,
  startRemoteStandIns,
  startWorkerRig,
  textMessage,
  webhookPayload,
  type RemoteStandIns,
  type WorkerRig,
} from '../support/worker';

const BAD_TOKEN_LINE = { lineId: 'line-bad-token', phoneNumberId: '19995550000', wabaId: 'w-bad', displayPhoneNumber: '19995550000' };

let remote: RemoteStandIns;
let rig: WorkerRig;

beforeAll(async () => {
  remote = await startRemoteStandIns();
  rig = await startWorkerRig(remote, {
    lines: [
      lineFor('doc', remote.bird.flowUrl()),
      { ...lineFor('pywa', remote.bird.flowUrl()), presence: { markRead: true, typing: false } },
      { ...lineFor('third', remote.bird.flowUrl()), presence: { markRead: false, typing: true } },
      { ...lineFor(BAD_TOKEN_LINE, remote.bird.flowUrl()), accessToken: 'a-revoked-token' },
    ],
  });
});
afterAll(async () => {
  await rig?.stop();
  await remote?.stop();
});
beforeEach(() => {
  remote.reset();
  remote.graph.messages.reset();
});

const reads = () => remote.graph.messages.readCalls();

async function deliver(phoneNumberId: string, wamid: string): Promise<void> {
  const before = await rig.handled();
  const message = wamid.endsWith('-group') ? { ...textMessage(wamid), group_id: 'G-presence' } : textMessage(wamid);
  expect(await rig.post(webhookPayload([{ changes: [{ phoneNumberId, messages: [message] }] }]))).toBe(200);
  await rig.waitForHandled(before + 1);
}

describe('presence: read receipt and typing indicator once Bird has the message', () => {
  it("marks the message read with the typing indicator, on the line's number, with its token", async () => {
    await deliver(LINES.doc.phoneNumberId, 'wamid.presence-1');
    await waitFor(async () => reads().length === 1, 5000, 'the read call');
    expect(reads()).toEqual([{ phoneNumberId: LINES.doc.phoneNumberId, messageId: 'wamid.presence-1', typing: true, outcome: 'ok' }]);
    // With the line's token (the stand-in accepts only GRAPH_TOKEN), on Graph's path for the number.
    expect(remote.graph.requests().filter((r) => r.method === 'POST').map((r) => [r.path, r.authorization, r.status])).toEqual([
      [`/v25.0/${LINES.doc.phoneNumberId}/messages`, true, 200],
    ]);
    expect(await rig.metric('wa_ingress_presence_calls_total', { outcome: 'sent' })).toBe(1);
  });

  it('follows the line: typing off sends the receipt alone, markRead off sends nothing', async () => {
    await deliver(LINES.pywa.phoneNumberId, 'wamid.presence-2');
    await deliver(LINES.third.phoneNumberId, 'wamid.presence-3');
    await waitFor(async () => reads().length === 1, 5000, 'the read call');
    expect(reads()).toEqual([{ phoneNumberId: LINES.pywa.phoneNumberId, messageId: 'wamid.presence-2', typing: false, outcome: 'ok' }]);
    expect(await rig.metric('wa_ingress_presence_calls_total', { outcome: 'skipped', reason: 'disabled' })).toBe(1);
    expect(remote.bird.received()).toHaveLength(2);
  });

  it('a failing read call never fails the delivery: counted, and the event completes once', async () => {
    remote.graph.messages.failNextReads(1);
    await deliver(LINES.doc.phoneNumberId, 'wamid.presence-4');
    await waitFor(async () => (await rig.metric('wa_ingress_presence_calls_total', { outcome: 'failed' })) === 1, 5000, 'the failed read');
    expect(await rig.metric('wa_ingress_presence_calls_total', { outcome: 'failed', reason: 'code_131000' })).toBe(1);
    expect(await rig.metric('wa_ingress_worker_events_total', { outcome: 'delivered' })).toBe(4);
    expect(await rig.metric('wa_ingress_worker_events_total', { outcome: 'retry' })).toBe(0);
    expect(countByKey(remote.bird.received()).get(`msg#${LINES.doc.phoneNumberId}#wamid.presence-4`)).toBe(1);
    // The poller deletes in batches: the message leaves the queue without a retry.
    await waitFor(async () => (await rig.queueDepth()) === 0, 5000, 'the message deleted');
  });

  it("Graph refusing the line's token on the read call: logged as graph_token_rejected (the token alarm), the delivery unharmed", async () => {
    await deliver(BAD_TOKEN_LINE.phoneNumberId, 'wamid.presence-5');
    await waitFor(async () => (await rig.metric('wa_ingress_presence_calls_total', { outcome: 'failed', reason: 'code_190' })) === 1, 5000, 'the refused read');
    const line = rig.logs.lines.find((l) => l.includes('"event":"graph_token_rejected"'));
    expect(line).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({ source: 'presence', lineId: 'line-bad-token', code: 190 });
    expect(line).not.toContain('a-revoked-token');
    expect(countByKey(remote.bird.received()).get(`msg#${BAD_TOKEN_LINE.phoneNumberId}#wamid.presence-5`)).toBe(1);
  });

  it('a message in a WhatsApp group gets no read receipt and no typing indicator (Meta refuses both in groups)', async () => {
    await deliver(LINES.doc.phoneNumberId, 'wamid.presence-group');
    await deliver(LINES.doc.phoneNumberId, 'wamid.presence-after-the-group-one');
    await waitFor(async () => reads().some((r) => r.messageId === 'wamid.presence-after-the-group-one'), 5000, 'the read call');
    expect(reads().map((r) => r.messageId)).toEqual(['wamid.presence-after-the-group-one']);
    expect(await rig.metric('wa_ingress_presence_calls_total', { outcome: 'skipped', reason: 'group' })).toBe(1);
  });
});
