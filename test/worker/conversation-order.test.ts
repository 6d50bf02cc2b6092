import type { ReceivedCall } from '../../src/local/bird-standin';
import { waitFor } from '../support/child';
import { LINES, startRemoteStandIns, startWorkerRig, type RemoteStandIns, type WorkerRig } from '../support/worker';

/**
 * Conversation order on a FIFO inbound queue, end to end: signed POSTs → ingress → local-aws-sqs
 * FIFO → worker → Bird stand-in. The stand-in does not hold a group while one of its messages is in
 * flight (real SQS does), so what keeps order here is the worker's own sequencing.
 */
const PHONE_NUMBER_ID = LINES.doc.phoneNumberId;

function textFrom(contact: string, wamid: string, timestamp = '1749416383'): string {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: LINES.doc.wabaId,
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: LINES.doc.displayPhoneNumber, phone_number_id: PHONE_NUMBER_ID },
              contacts: [{ profile: { name: 'Someone' }, wa_id: contact }],
              messages: [{ from: contact, id: wamid, timestamp, type: 'text', text: { body: `text of ${wamid}` } }],
            },
          },
        ],
      },
    ],
  });
}

/**
 * The next `count` Bird calls each take a different time (a fixed, scrambled pattern): without the
 * worker's sequencing, messages of one contact handled at once would reach Bird out of order.
 */
function scrambleBirdLatency(remote: RemoteStandIns, count: number, baseMs: number): number {
  let total = 0;
  for (let i = 0; i < count; i++) {
    const delayMs = baseMs + ((i * 7919) % 5) * (baseMs / 2);
    total += delayMs;
    remote.bird.failNext(1, { delayMs });
  }
  return total;
}

const wamidOf = (call: ReceivedCall) => (call.body as { message?: { id?: string } }).message?.id ?? '';
const delivered = (remote: RemoteStandIns) => remote.bird.received().filter((c) => !c.duplicate).map(wamidOf);

describe('conversation order on a FIFO queue', () => {
  let remote: RemoteStandIns;
  let rig: WorkerRig;
  beforeAll(async () => {
    remote = await startRemoteStandIns();
    rig = await startWorkerRig(remote, {
      aws: { fifo: true, queueName: 'order' },
      env: { WORKER_CONCURRENCY: '16' },
      custom: { bird: { retry: { maxAttempts: 1 }, breaker: { consecutiveFailures: 1000 } }, retryBaseSeconds: 1, retryMaxSeconds: 1 },
    });
  });
  afterAll(async () => {
    await rig?.stop();
    await remote?.stop();
  });
  beforeEach(() => remote.reset());

  it('one contact, 20 texts POSTed back to back: Bird receives all 20 in the order sent', async () => {
    const sent = Array.from({ length: 20 }, (_, i) => `wamid.one-${String(i + 1).padStart(2, '0')}`);
    scrambleBirdLatency(remote, sent.length, 40);
    const started = Date.now();
    for (const wamid of sent) expect(await rig.post(textFrom('15550000001', wamid))).toBe(200);
    await waitFor(async () => delivered(remote).length >= 20, 20_000, '20 deliveries');
    const elapsed = Date.now() - started;
    expect(delivered(remote)).toEqual(sent);
    console.log(`[order] 1 contact × 20 texts: all 20 in order, ${elapsed} ms from the first POST to the last delivery`);
  });

  it('5 contacts interleaved: each in its own order, and the contacts are not serialised behind one another', async () => {
    const contacts = Array.from({ length: 5 }, (_, c) => `1555000010${c}`);
    const perContact = 4;
    // Bird calls take 100–300 ms: serialised, the 20 calls would take serialMs.
    const serialMs = scrambleBirdLatency(remote, contacts.length * perContact, 100);
    const started = Date.now();
    for (let i = 0; i < perContact; i++) {
      for (const [c, contact] of contacts.entries()) expect(await rig.post(textFrom(contact, `wamid.c${c}-${i + 1}`))).toBe(200);
    }
    await waitFor(async () => delivered(remote).length >= contacts.length * perContact, 20_000, 'all deliveries');
    const elapsed = Date.now() - started;
    const got = delivered(remote);
    for (const c of contacts.keys()) {
      expect(got.filter((w) => w.startsWith(`wamid.c${c}-`))).toEqual(Array.from({ length: perContact }, (_, i) => `wamid.c${c}-${i + 1}`));
    }
    console.log(
      `[order] 5 contacts × ${perContact} texts, Bird 100–300 ms per call: ${elapsed} ms in all vs ${serialMs} ms if serialised (${(serialMs / elapsed).toFixed(1)}× faster); each contact in order`,
    );
    // Contacts in parallel stay well under the serial time.
    expect(elapsed).toBeLessThan(serialMs * 0.8);
  });

  it('a Bird 503 on message 3 of a contact holds 4 and 5 until 3 is through', async () => {
    const contact = '15550000200';
    const wamid = (n: number) => `wamid.retry-${n}`;
    for (const n of [1, 2]) expect(await rig.post(textFrom(contact, wamid(n)))).toBe(200);
    await waitFor(async () => delivered(remote).length >= 2, 10_000, 'messages 1 and 2');
    const heldBefore = await rig.metric('wa_ingress_worker_group_held_total');
    // The next Bird call (message 3's, if order holds) fails once with 503.
    remote.bird.failNext(1, { status: 503 });
    for (const n of [3, 4, 5]) expect(await rig.post(textFrom(contact, wamid(n)))).toBe(200);
    await waitFor(async () => delivered(remote).length >= 5, 15_000, 'messages 3, 4 and 5');
    expect(delivered(remote)).toEqual([1, 2, 3, 4, 5].map(wamid));
    // The failed call was message 3's, and nothing of 4 or 5 reached Bird before 3 was accepted.
    const attempts = remote.bird.attempts().map((a) => a.status);
    const ok = attempts[0];
    expect(ok).not.toBe(503);
    expect(attempts).toEqual([ok, ok, 503, ok, ok, ok]);
    expect(await rig.metric('wa_ingress_worker_group_held_total')).toBeGreaterThan(heldBefore);
  });

  it('the same payload POSTed 3 times in a row reaches the worker once (SQS FIFO dedup on the body sha256)', async () => {
    const receivedBefore = await rig.metric('wa_ingress_worker_messages_received_total');
    // local-aws-sqs dedupes only while the first copy is still on the queue (SQS: 5 minutes), so
    // Bird is slowed for this one call to keep it there while the repeats arrive.
    remote.bird.failNext(1, { delayMs: 500 });
    const body = textFrom('15550000300', 'wamid.thrice');
    for (let i = 0; i < 3; i++) expect(await rig.post(body)).toBe(200);
    await waitFor(async () => delivered(remote).length >= 1 && (await rig.queueDepth()) === 0, 10_000, 'the delivery');
    await new Promise((r) => setTimeout(r, 300));
    expect(await rig.metric('wa_ingress_worker_messages_received_total')).toBe(receivedBefore + 1);
    expect(remote.bird.attempts()).toHaveLength(1);
    expect(await rig.ingress.metric('wa_ingress_fifo_duplicates_total', { same_message_id: 'true' })).toBe(2);
  });

  it('a POST mixing a message and a status: two SQS messages (conversation and status lanes), each event reaches Bird once', async () => {
    const receivedBefore = await rig.metric('wa_ingress_worker_messages_received_total');
    const duplicatesBefore = await rig.metric('wa_ingress_worker_events_total', { outcome: 'duplicate' });
    const contact = '15550000400';
    const payload = JSON.parse(textFrom(contact, 'wamid.mixed-message')) as { entry: { changes: { value: Record<string, unknown> }[] }[] };
    payload.entry[0]!.changes[0]!.value.statuses = [{ id: 'wamid.mixed-reply', status: 'delivered', timestamp: '1749416380', recipient_id: contact }];
    expect(await rig.post(JSON.stringify(payload))).toBe(200);
    await waitFor(async () => remote.bird.received().length >= 2 && (await rig.queueDepth()) === 0, 10_000, 'both events at Bird');
    await new Promise((r) => setTimeout(r, 300));
    expect(await rig.metric('wa_ingress_worker_messages_received_total')).toBe(receivedBefore + 2);
    expect(remote.bird.received().map((c) => c.idempotencyKey).sort()).toEqual([`msg#${PHONE_NUMBER_ID}#wamid.mixed-message`, 'status#wamid.mixed-reply#delivered']);
    expect(remote.bird.received().filter((c) => c.duplicate)).toEqual([]);
    // Each copy handled only its lane: neither met the other's event as a duplicate.
    expect(await rig.metric('wa_ingress_worker_events_total', { outcome: 'duplicate' })).toBe(duplicatesBefore);
  });
});
