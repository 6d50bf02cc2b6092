import { createBirdClient } from '../../src/bird/http-bird-client';
import { parseLines } from '../../src/lines/admin';
import { ReferenceSecretResolver } from '../../src/lines/secrets';
import { startBirdStandIn, type BirdStandIn } from '../../src/local/bird-standin';
import { createRegistry } from '../../src/observability/metrics';
import { OutboundFailureReporter } from '../../src/outbound/failure-reporter';
import { encodeJob, type OutboundJob } from '../../src/outbound/job-message';
import { outboundId } from '../../src/outbound/record';
import { DlqParker } from '../../src/queue/dlq';
import { PARKING_ATTRIBUTES } from '../../src/queue/dlq-parking';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { capturedLogger } from '../support/logs';
import { lineFor } from '../support/worker';

/** outbound_failed reaches the line's flow unless its forwardStatuses is `none`; the reply is parked either way. */
let aws: AwsHarness;
let bird: BirdStandIn;
let reporter: OutboundFailureReporter;
const logs = capturedLogger('warn');
const registry = createRegistry({ defaultMetrics: false });

beforeAll(async () => {
  aws = await startAwsHarness();
  bird = await startBirdStandIn({ logger: logs.logger });
  reporter = new OutboundFailureReporter({
    bird: createBirdClient({ logger: logs.logger, registry }),
    secrets: new ReferenceSecretResolver({ production: false, cacheTtlMs: 0, env: {} }),
    parker: new DlqParker({ sqs: aws.clients.sqs, dlqUrl: aws.standIns.outboundDlqUrl, registry }),
    logger: logs.logger,
  });
});
afterAll(async () => {
  await bird.stop();
  await aws.stop();
});

async function reportFor(forwardStatuses: 'failed' | 'none' | undefined, key: string): Promise<string> {
  const line = parseLines([{ ...lineFor('doc', bird.flowUrl()), forwardStatuses }], { production: false })[0]!;
  const id = outboundId(line.lineId, key);
  const job: OutboundJob = { v: 1, id, lineId: line.lineId, to: '16505551234', idempotencyKey: key, source: 'api', body: { type: 'text', text: { body: 'hi' } } };
  const raw = encodeJob(id, job);
  const message = { messageId: `m-${key}`, receiveCount: 1, body: Buffer.from(raw), attributes: {}, original: { body: raw, attributes: {} } };
  await reporter.report(job, line, { code: 131047, title: 'Re-engagement message' }, message);
  return id;
}

const parkedIds = async () => (await aws.drainQueue(aws.standIns.outboundDlqUrl)).map((m) => m.MessageAttributes?.[PARKING_ATTRIBUTES.eventKey]?.StringValue);

describe('outbound_failed and forwardStatuses', () => {
  it('`failed` (and the default) tells the flow; `none` does not; each parks the reply', async () => {
    const told = await reportFor('failed', 'ff-failed');
    const byDefault = await reportFor(undefined, 'ff-default');
    const silent = await reportFor('none', 'ff-none');
    const keys = bird.received().filter((call) => call.body.kind === 'outbound_failed').map((call) => call.idempotencyKey);
    expect(keys.sort()).toEqual([`outbound_failed#${told}`, `outbound_failed#${byDefault}`].sort());
    expect(keys).not.toContain(`outbound_failed#${silent}`);
    expect((await parkedIds()).sort()).toEqual([told, byDefault, silent].sort());
  });
});
