import type { LatencyFigures } from '../../src/console/ui/contract';
import { startConsoleRig, type ConsoleRig } from '../support/console';
import { waitFor } from '../support/child';
import { LINES, startRemoteStandIns, webhookPayload, type RemoteStandIns } from '../support/worker';

const SENDER = '16505551234';

/** Delivery latency through the rig: a message Meta stamped 3 s ago, delivered to Bird, answered by the Flow. */
let remote: RemoteStandIns;
let c: ConsoleRig;

beforeAll(async () => {
  remote = await startRemoteStandIns();
  c = await startConsoleRig(remote, { outbound: true });
});

afterAll(async () => {
  await c.stop();
  await remote.stop();
});

it('p50/p95 from Meta\'s timestamp to Bird and from received to reply sent, in /console/api/lines and the stage histogram', async () => {
  remote.bird.respondWith((body) => (body.kind === 'message' ? { replies: [{ type: 'text', text: { body: 'thanks' } }] } : undefined));
  const stamped = Math.floor(Date.now() / 1000) - 3;
  const message = { from: SENDER, id: 'wamid.LATENCY-1', timestamp: String(stamped), type: 'text', text: { body: 'hello' } };
  expect(await c.rig.post(webhookPayload([{ changes: [{ phoneNumberId: LINES.doc.phoneNumberId, messages: [message] }] }]))).toBe(200);
  await waitFor(async () => remote.graph.messages.sends().some((s) => s.to === SENDER && s.outcome !== 'error'), 15_000, 'the reply sent');

  let latency: { metaToBird: LatencyFigures; receivedToReplySent: LatencyFigures } | undefined;
  await waitFor(
    async () => {
      const lines = (await (await c.api('lines')).json()) as { items: { lineId: string; latency: typeof latency }[] };
      latency = lines.items.find((l) => l.lineId === LINES.doc.lineId)?.latency;
      return (latency?.metaToBird.samples ?? 0) >= 1 && (latency?.receivedToReplySent.samples ?? 0) >= 1;
    },
    10_000,
    'latency samples in the lines',
  );
  // Meta stamped it 3 s before it was posted (whole seconds: up to 1 s more).
  expect(latency!.metaToBird.p50Ms).toBeGreaterThanOrEqual(2000);
  expect(latency!.metaToBird.p95Ms).toBeLessThan(30_000);
  expect(latency!.receivedToReplySent.p50Ms).toBeGreaterThan(0);
  expect(latency!.receivedToReplySent.p50Ms).toBeLessThan(latency!.metaToBird.p50Ms! + 30_000);

  expect(await c.rig.metric('wa_ingress_stage_seconds_count', { stage: 'meta_to_bird' })).toBeGreaterThanOrEqual(1);
  expect(await c.rig.metric('wa_ingress_stage_seconds_count', { stage: 'received_to_bird' })).toBeGreaterThanOrEqual(1);
  expect(await c.rig.metric('wa_ingress_stage_seconds_count', { stage: 'received_to_reply_sent' })).toBeGreaterThanOrEqual(1);
});
