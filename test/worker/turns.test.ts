import { setTimeout as sleep } from 'node:timers/promises';
import type { TurnPolicy } from '../../src/lines/line';
import type { ReceivedCall } from '../../src/local/bird-standin';
import { waitFor } from '../support/child';
import { LINES, lineFor, startRemoteStandIns, startWorkerRig, type RemoteStandIns, type WorkerRig } from '../support/worker';

/**
 * Conversation turns end to end on the stand-ins (FIFO inbound queue, standard timer queue,
 * dynalite): a burst from one contact reaches the flow as one `turn` event.
 */
const QUIET: TurnPolicy = { quietMs: 700, maxWaitMs: 5000, maxMessages: 10 };
const BURSTY: TurnPolicy = { quietMs: 900, maxWaitMs: 1500, maxMessages: 20 };

type LineIds = { phoneNumberId: string; wabaId: string; displayPhoneNumber: string };

function text(line: LineIds, contact: string, wamid: string): string {
  return payload(line, contact, { from: contact, id: wamid, timestamp: '1749416383', type: 'text', text: { body: `text of ${wamid}` } });
}

function image(line: LineIds, contact: string, wamid: string): string {
  return payload(line, contact, { from: contact, id: wamid, timestamp: '1749416383', type: 'image', image: { id: `media-${wamid}`, mime_type: 'image/jpeg', caption: `caption of ${wamid}` } });
}

function payload(line: LineIds, contact: string, message: Record<string, unknown>): string {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: line.wabaId,
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: line.displayPhoneNumber, phone_number_id: line.phoneNumberId },
              contacts: [{ profile: { name: 'Someone' }, wa_id: contact }],
              messages: [message],
            },
          },
        ],
      },
    ],
  });
}

interface TurnBody {
  kind: string;
  reference: string;
  contact: { waId?: string } | null;
  turn?: { id: string; cut: string; messages: Array<{ reference: string; kind: string; message: { id: string; text?: string; media?: { url: string; s3Key: string; mimeType?: string } } }> };
}
const bodyOf = (call: ReceivedCall) => call.body as unknown as TurnBody;
const turnsAt = (remote: RemoteStandIns) => remote.bird.received().filter((c) => !c.duplicate).map(bodyOf);

describe('conversation turns', () => {
  let remote: RemoteStandIns;
  let rig: WorkerRig;
  const arrivals: number[] = [];
  beforeAll(async () => {
    remote = await startRemoteStandIns();
    rig = await startWorkerRig(remote, {
      aws: { fifo: true, queueName: 'turns' },
      env: { WORKER_CONCURRENCY: '8' },
      lines: [
        { ...lineFor('doc', remote.bird.flowUrl()), turn: QUIET },
        { ...lineFor('pywa', remote.bird.flowUrl()), turn: BURSTY },
        // No turn: every message alone, as before.
        lineFor('third', remote.bird.flowUrl()),
      ],
    });
  });
  afterAll(async () => {
    await rig?.stop();
    await remote?.stop();
  });
  let sampler: NodeJS.Timeout | undefined;
  beforeEach(async () => {
    // Warm the path (connections, caches) so the timings below are the turn's, not a cold start's.
    remote.reset();
    expect(await rig.post(text(LINES.third, '15550001000', `wamid.warm-${Date.now()}`))).toBe(200);
    await waitFor(async () => remote.bird.received().length >= 1, 10_000, 'the warm-up delivery');
    remote.reset();
    arrivals.length = 0;
    // Bird arrival times, sampled every 10 ms (the stand-in does not stamp them).
    sampler = setInterval(() => {
      while (arrivals.length < turnsAt(remote).length) arrivals.push(Date.now());
    }, 10);
  });
  afterEach(() => clearInterval(sampler));

  const watchArrivals = (count: number, timeoutMs: number) => waitFor(async () => arrivals.length >= count, timeoutMs, `${count} Bird calls`);

  it('3 messages within 300 ms reach Bird as one turn with the 3 in order, after quietMs; a repeat of one delivers nothing', async () => {
    const contact = '15550001001';
    const sent = ['wamid.t-1', 'wamid.t-2', 'wamid.t-3'];
    const started = Date.now();
    // The second is a picture: it comes in the turn as it would have alone, copied to S3 and linked.
    for (const [i, wamid] of sent.entries()) expect(await rig.post((i === 1 ? image : text)(LINES.doc, contact, wamid))).toBe(200);
    const lastPost = Date.now();
    await watchArrivals(1, 10_000);
    await sleep(QUIET.quietMs + 1500); // nothing else comes: not the messages alone, not a second turn
    const calls = turnsAt(remote);
    expect(calls).toHaveLength(1);
    const [turn] = calls;
    expect(turn!.kind).toBe('turn');
    expect(turn!.reference).toMatch(/^turn#line-doc#/);
    expect(turn!.contact?.waId).toBe(contact);
    expect(turn!.turn!.cut).toBe('quiet');
    // Each message as the flow would have received it alone: its own reference (event key), kind and text.
    expect(turn!.turn!.messages.map((m) => [m.reference, m.kind, m.message.id, m.message.text])).toEqual(
      sent.map((w, i) => [`msg#${LINES.doc.phoneNumberId}#${w}`, 'message', w, i === 1 ? `caption of ${w}` : `text of ${w}`]),
    );
    const media = turn!.turn!.messages[1]!.message.media!;
    expect(media.url).toContain(media.s3Key);
    expect((await rig.headObject(media.s3Key)).found).toBe(true);
    const waited = arrivals[0]! - lastPost;
    console.log(`[turns] 3 messages in ${lastPost - started} ms → one turn ${waited} ms after the last POST (quietMs ${QUIET.quietMs})`);
    expect(waited).toBeGreaterThanOrEqual(QUIET.quietMs - 50);
    expect(waited).toBeLessThan(QUIET.quietMs + 1500);

    // Meta repeats one of the payloads later (or an operator redrives it): it is done under its own key.
    expect(await rig.post(text(LINES.doc, contact, sent[1]!))).toBe(200);
    await waitFor(async () => (await rig.queueDepth()) === 0, 10_000, 'the repeat handled');
    await sleep(QUIET.quietMs + 1500);
    expect(turnsAt(remote)).toHaveLength(1);
  });

  it('a burst longer than maxWaitMs is cut at maxWaitMs; the rest follows as the next turn, every message once and in order', async () => {
    const contact = '15550001002';
    const sent = Array.from({ length: 10 }, (_, i) => `wamid.burst-${i + 1}`);
    const started = Date.now();
    const postedAt: number[] = [];
    for (const wamid of sent) {
      expect(await rig.post(text(LINES.pywa, contact, wamid))).toBe(200);
      postedAt.push(Date.now());
      await sleep(200);
    }
    await watchArrivals(2, 15_000);
    await sleep(BURSTY.quietMs + 1500);
    const calls = turnsAt(remote);
    expect(calls.every((c) => c.kind === 'turn')).toBe(true);
    expect(calls[0]!.turn!.cut).toBe('max_wait');
    // Cut while the contact was still writing: before the last message was even sent.
    expect(arrivals[0]!).toBeLessThan(postedAt[postedAt.length - 1]!);
    expect(arrivals[0]! - started).toBeLessThan(BURSTY.maxWaitMs + 1500);
    expect(calls.at(-1)!.turn!.cut).toBe('quiet');
    expect(calls.flatMap((c) => c.turn!.messages.map((m) => m.message.id))).toEqual(sent);
    console.log(
      `[turns] 10 messages over ${postedAt.at(-1)! - started} ms, maxWaitMs ${BURSTY.maxWaitMs}: turns of ${calls.map((c) => c.turn!.messages.length).join(' + ')} (${calls.map((c) => c.turn!.cut).join(', ')}), the first at +${arrivals[0]! - started} ms`,
    );
  });

  it('statuses are never held, and a line without turn delivers each message alone', async () => {
    const status = JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [{ id: LINES.doc.wabaId, changes: [{ field: 'messages', value: { metadata: { phone_number_id: LINES.doc.phoneNumberId }, statuses: [{ id: 'wamid.out-1', status: 'read', timestamp: '1749416390', recipient_id: '15550001003' }] } }] }],
    });
    expect(await rig.post(status)).toBe(200);
    expect(await rig.post(text(LINES.third, '15550001003', 'wamid.alone-1'))).toBe(200);
    await watchArrivals(2, 10_000);
    expect(turnsAt(remote).map((c) => c.kind).sort()).toEqual(['message', 'status']);
  });
});
