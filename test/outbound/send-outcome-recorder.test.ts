import { wamidDigest } from '../../src/privacy/pseudonyms';
import { createBirdClient } from '../../src/bird/http-bird-client';
import { parseLines } from '../../src/lines/admin';
import { ReferenceSecretResolver } from '../../src/lines/secrets';
import { createRegistry } from '../../src/observability/metrics';
import { DynamoOutboundStore } from '../../src/outbound/dynamo-outbound-store';
import { OutboundFailureReporter } from '../../src/outbound/failure-reporter';
import { encodeJob, type OutboundJob } from '../../src/outbound/job-message';
import { fenceOf } from '../../src/outbound/outbound-store';
import { bodyHash, outboundId } from '../../src/outbound/record';
import { SendOutcomeRecorder, type Sending } from '../../src/outbound/send-outcome-recorder';
import { DlqParker } from '../../src/queue/dlq';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { capturedLogger } from '../support/logs';
import { lineFor } from '../support/worker';

/**
 * Defect 5 as the sender lives it, on dynalite: a sender pauses past its lease, another claims the
 * reply, and the paused one comes back with its outcome. Its write is refused; it logs, counts, and
 * leaves the record (and the DLQ) to the new owner.
 */
let aws: AwsHarness;
let now = Date.parse('2026-12-01T10:00:00Z');
let store: DynamoOutboundStore;
let recorder: SendOutcomeRecorder;
const logs = capturedLogger('debug');
const registry = createRegistry({ defaultMetrics: false });
const line = parseLines([lineFor('doc', 'http://127.0.0.1:9/flow')], { production: false })[0]!;

beforeAll(async () => {
  aws = await startAwsHarness();
  store = new DynamoOutboundStore({ documents: aws.clients.documents, tableName: aws.names.outboundTable, retentionDays: 14, clock: () => now });
  const reporter = new OutboundFailureReporter({
    bird: createBirdClient({ logger: logs.logger, registry }),
    secrets: new ReferenceSecretResolver({ production: false, cacheTtlMs: 0, env: {} }),
    parker: new DlqParker({ sqs: aws.clients.sqs, dlqUrl: aws.standIns.outboundDlqUrl, registry }),
    logger: logs.logger,
  });
  recorder = new SendOutcomeRecorder({ store, reporter, maxAmbiguousResends: 1, registry });
});
afterAll(() => aws.stop());

let n = 0;
/** A reply claimed by a sender that then paused past its lease, and claimed again by another. */
async function takenOver(): Promise<{ stale: Sending; owner: Sending }> {
  const key = `fence-${n++}`;
  const id = outboundId(line.lineId, key);
  const job: OutboundJob = { v: 1, id, lineId: line.lineId, to: '16505551234', idempotencyKey: key, source: 'api', body: { type: 'text', text: { body: 'hi' } } };
  await store.create({ id, lineId: line.lineId, idempotencyKey: key, to: job.to, bodyHash: bodyHash(job.to, job.body), type: 'text', source: 'api', body: job.body });
  const raw = encodeJob(id, job);
  const message = { messageId: `m-${key}`, receiveCount: 1, body: Buffer.from(raw), attributes: {}, original: { body: raw, attributes: {} } };
  const sending = (claim: Awaited<ReturnType<DynamoOutboundStore['claim']>>): Sending => {
    if (!claim.claimed) throw new Error('not claimed');
    return { job, line, fence: fenceOf(claim), ambiguousBefore: claim.record.ambiguousSends ?? 0, message, log: logs.logger };
  };
  const stale = sending(await store.claim(id, 1000));
  now += 1001;
  const owner = sending(await store.claim(id, 1000));
  return { stale, owner };
}

const fencedOut = async (write: string) => (await registry.getSingleMetric('wa_ingress_outbound_fenced_out_total')!.get()).values.find((v) => v.labels.write === write)?.value ?? 0;

describe('SendOutcomeRecorder when fenced out', () => {
  it('an ambiguous outcome, a clean refusal or a permanent failure of the stale claim: refused, logged, counted; the job comes back later', async () => {
    for (const [write, act] of [
      ['uncertain', (s: Sending) => recorder.ambiguous(s, 'timeout', 5000)],
      ['release', (s: Sending) => recorder.release(s, 'rate_limited 130429', 3)],
      ['failed', (s: Sending) => recorder.failed(s, { code: 131047, title: 'Re-engagement message' }, undefined)],
    ] as const) {
      const { stale, owner } = await takenOver();
      const before = await fencedOut(write);
      expect(await act(stale)).toEqual({ action: 'retry', reason: 'claim_fenced_out' });
      expect(await fencedOut(write)).toBe(before + 1);
      expect(await store.get(owner.fence.id)).toMatchObject({ status: 'sending', attempts: 2 });
      // The owner's outcome still applies.
      expect(await recorder.accepted(owner, 'wamid.owner')).toEqual({ action: 'delete' });
      expect(await store.get(owner.fence.id)).toMatchObject({ status: 'sent', wamid: wamidDigest('wamid.owner') });
    }
    expect(logs.text()).toContain('outbound_fenced_out');
    // Nothing was parked or told to Bird on the stale sender's word.
    expect(await aws.drainQueue(aws.standIns.outboundDlqUrl)).toEqual([]);
  });

  it('an accept of the stale claim is refused too: the job is done, the owner keeps the record', async () => {
    const { stale, owner } = await takenOver();
    const before = await fencedOut('sent');
    expect(await recorder.accepted(stale, 'wamid.stale')).toEqual({ action: 'delete' });
    expect(await fencedOut('sent')).toBe(before + 1);
    expect(await store.get(owner.fence.id)).toMatchObject({ status: 'sending', attempts: 2 });
    expect((await store.get(owner.fence.id))!.wamid).toBeUndefined();
  });

  it('a status that settled the record first is not a fence: the ambiguous outcome just ends the job', async () => {
    const { owner } = await takenOver();
    await store.settle({ lineId: line.lineId, id: owner.fence.id, wamid: 'wamid.status', status: 'delivered' });
    const before = await fencedOut('uncertain');
    expect(await recorder.ambiguous(owner, 'timeout', 5000)).toEqual({ action: 'delete' });
    expect(await fencedOut('uncertain')).toBe(before);
    expect(await store.get(owner.fence.id)).toMatchObject({ status: 'delivered' });
  });
});
