import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReceiveMessageCommand, SendMessageCommand, SQSClient, type MessageAttributeValue } from '@aws-sdk/client-sqs';
import fc from 'fast-check';
import { startAwsStandIns, type AwsStandIns } from '../../src/local/aws-standins';
import { createRegistry } from '../../src/observability/metrics';
import { DeadLetterQueue, DlqParker, parkingAttributes, unparkedAttributes, REDRIVE_POLICY_REASON } from '../../src/queue/dlq';
import { runDlqCli } from '../../src/cli/dlq';
import { REDRIVE_ATTRIBUTES, sendableAttributes, stringAttributes, type SqsAttributes } from '../../src/queue/message';
import { FAILURE_REASONS, type PermanentReason } from '../../src/errors';
import { createQueuePair } from '../support/aws';

const REGION = 'us-east-1';
const META_BODY = JSON.stringify({ object: 'whatsapp_business_account', entry: [{ id: '102290129340398', changes: [] }] });
const INGRESS = { receivedAt: '2025-01-02T03:04:05.000Z', requestId: 'req-7', bodySha256: 'ab'.repeat(32) };

const names = (attributes: SqsAttributes) => Object.keys(attributes).sort();
const values = (attributes: SqsAttributes) => Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, v.StringValue]));

describe('parking attributes', () => {
  it.each([
    {
      name: 'generic URL, routed event: lineId is a parking attribute and the redrive removes it',
      ingress: { ...INGRESS },
      park: { reason: 'bird_rejected_400', eventKey: 'msg#1#wamid.A', lineId: 'line-2' },
      dlqLineId: 'line-2',
    },
    {
      name: 'per-line URL, same line: the ingress lineId stays',
      ingress: { ...INGRESS, lineId: 'line-1' },
      park: { reason: 'bird_rejected_400', eventKey: 'msg#1#wamid.A', lineId: 'line-1' },
      dlqLineId: 'line-1',
    },
    {
      name: 'per-line URL, event on another line: the DLQ shows the event line, the redrive restores the ingress one',
      ingress: { ...INGRESS, lineId: 'line-1' },
      park: { reason: 'media_too_large', eventKey: 'msg#9#wamid.B', lineId: 'line-9' },
      dlqLineId: 'line-9',
    },
    {
      name: 'unrouted event: no lineId anywhere',
      ingress: { ...INGRESS },
      park: { reason: 'unrouted', eventKey: 'msg#5#wamid.C' },
      dlqLineId: undefined,
    },
  ])('$name', ({ ingress, park, dlqLineId }) => {
    const original = stringAttributes(ingress);
    const parked = parkingAttributes({ attributes: original, ...park, reason: park.reason as PermanentReason }, new Date('2025-02-03T00:00:00Z'));
    expect(parked.reason?.StringValue).toBe(park.reason);
    expect(parked.eventKey?.StringValue).toBe(park.eventKey);
    expect(parked.lineId?.StringValue).toBe(dlqLineId);
    expect(Object.keys(parked).length).toBeLessThanOrEqual(10); // SQS's cap on message attributes
    // The redrive keeps the event key: the worker then delivers that event of the payload and no other.
    expect(values(unparkedAttributes(parked))).toEqual({ ...ingress, eventKey: park.eventKey });
  });

  it('a message the redrive policy moved (no parking record) goes back untouched', () => {
    const attributes = stringAttributes({ ...INGRESS, lineId: 'line-1' });
    expect(unparkedAttributes(attributes)).toEqual(attributes);
  });

  it('round-trips any String attributes, whatever names and values they use, plus the parked event key', () => {
    const attrName = fc.constantFrom('receivedAt', 'requestId', 'lineId', 'bodySha256', 'traceparent', 'claimCheck', 'reason', 'eventKey', 'x-other');
    const value = fc.string({ minLength: 1, maxLength: 20 });
    const permanent = Object.entries(FAILURE_REASONS).filter(([, kind]) => kind === 'permanent').map(([reason]) => reason as PermanentReason);
    fc.assert(
      fc.property(fc.dictionary(attrName, value), fc.constantFrom(...permanent), fc.option(value, { nil: undefined }), fc.option(value, { nil: undefined }), (attrs, reason, eventKey, lineId) => {
        const original = stringAttributes(attrs);
        const expected = sendableAttributes(original);
        if (eventKey) expected[REDRIVE_ATTRIBUTES.eventKey] = { DataType: 'String', StringValue: eventKey };
        expect(unparkedAttributes(parkingAttributes({ attributes: original, reason, eventKey, lineId }))).toEqual(expected);
      }),
    );
  });
});

describe('DLQ parker and tool against local-aws-sqs', () => {
  let standIns: AwsStandIns;
  let sqs: SQSClient;
  let queueCount = 0;

  beforeAll(async () => {
    standIns = await startAwsStandIns();
    sqs = new SQSClient({ region: REGION, endpoint: standIns.endpoints.sqs, credentials: standIns.credentials });
  });
  afterAll(async () => {
    sqs.destroy();
    await standIns.stop();
  });

  async function freshQueues(maxReceiveCount = 5) {
    const { queueUrl, dlqUrl } = await createQueuePair(sqs, `dlq-${++queueCount}`, { maxReceiveCount });
    const registry = createRegistry({ defaultMetrics: false });
    return {
      queueUrl,
      dlqUrl,
      registry,
      parker: new DlqParker({ sqs, dlqUrl, registry }),
      dlq: new DeadLetterQueue({ sqs, queueUrl, dlqUrl, waitTimeSeconds: 0 }),
    };
  }

  const ingressAttributes = (extra: Record<string, string> = {}): Record<string, MessageAttributeValue> =>
    stringAttributes({ ...INGRESS, ...extra });

  async function receiveAll(queueUrl: string) {
    const out = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageAttributeNames: ['All'] }),
    );
    return out.Messages ?? [];
  }

  it('park → list shows reason, eventKey and lineId; show gives attributes and body; list leaves the messages visible', async () => {
    const { parker, dlq, registry } = await freshQueues();
    const routedId = await parker.park({
      body: META_BODY,
      attributes: ingressAttributes(),
      reason: 'bird_rejected_400',
      eventKey: 'msg#106540352242922#wamid.A',
      lineId: 'line-2',
    });
    const unroutedId = await parker.park({ body: META_BODY, attributes: ingressAttributes(), reason: 'unrouted', eventKey: 'status#wamid.B#read' });

    const entries = await dlq.list();
    expect(entries.map((e) => e.id).sort()).toEqual([routedId, unroutedId].sort());
    const routed = entries.find((e) => e.id === routedId)!;
    expect(routed).toMatchObject({
      reason: 'bird_rejected_400',
      eventKey: 'msg#106540352242922#wamid.A',
      lineId: 'line-2',
      receivedAt: INGRESS.receivedAt,
      bodyBytes: Buffer.byteLength(META_BODY),
    });
    expect(routed.receiveCount).toBeGreaterThanOrEqual(1);
    expect(entries.find((e) => e.id === unroutedId)?.lineId).toBeUndefined();

    // Right after list (which received them), show still finds them: list released them.
    const shown = await dlq.show(unroutedId);
    expect(shown?.body).toBe(META_BODY);
    expect(shown?.attributes.requestId?.StringValue).toBe('req-7');
    expect(shown?.attributes.reason?.StringValue).toBe('unrouted');
    expect(await dlq.show('no-such-id')).toBeUndefined();
    expect((await registry.getSingleMetric('wa_ingress_worker_parked_total')?.get())?.values.length).toBe(2);
  });

  it('a message moved by the redrive policy shows reason redrive_max_receives', async () => {
    const { queueUrl, dlq } = await freshQueues(1);
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: META_BODY, MessageAttributes: ingressAttributes({ lineId: 'line-1' }) }));
    await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, VisibilityTimeout: 1, WaitTimeSeconds: 0 }));
    await new Promise((r) => setTimeout(r, 1300)); // visibility lapses at the 1st (= max) receive: SQS moves it
    const [entry] = await dlq.list();
    expect(entry).toMatchObject({ reason: REDRIVE_POLICY_REASON, lineId: 'line-1', receivedAt: INGRESS.receivedAt });
    expect(entry?.eventKey).toBeUndefined();
  });

  it('redrive <id>: back on the main queue with the ingress attributes and the parked event key only, gone from the DLQ; --all takes the rest', async () => {
    const { queueUrl, dlqUrl, parker, dlq } = await freshQueues();
    const claimBody = JSON.stringify({ claimCheck: { bucket: 'b', key: `claim-check/${'cd'.repeat(32)}.json`, sha256: 'cd'.repeat(32), size: 2_000_000 } });
    const first = await parker.park({
      body: claimBody,
      attributes: ingressAttributes({ claimCheck: `s3://b/claim-check/${'cd'.repeat(32)}.json` }),
      reason: 'bird_rejected_400',
      eventKey: 'msg#1#wamid.A',
      lineId: 'line-2',
    });
    const second = await parker.park({ body: META_BODY, attributes: ingressAttributes({ lineId: 'line-1' }), reason: 'bird_rejected_400', eventKey: 'msg#1#wamid.B', lineId: 'line-1' });

    const result = await dlq.redrive({ id: first });
    expect(result).toEqual({ redriven: [first], notDeleted: [], failed: [] });
    const [back] = await receiveAll(queueUrl);
    expect(back?.Body).toBe(claimBody);
    expect(values(back?.MessageAttributes ?? {})).toEqual({ ...INGRESS, claimCheck: `s3://b/claim-check/${'cd'.repeat(32)}.json`, eventKey: 'msg#1#wamid.A' });
    expect((await dlq.list()).map((e) => e.id)).toEqual([second]);

    const rest = await dlq.redrive({ all: true });
    expect(rest.redriven).toEqual([second]);
    const [again] = await receiveAll(queueUrl);
    expect(names(again?.MessageAttributes ?? {})).toEqual(['bodySha256', 'eventKey', 'lineId', 'receivedAt', 'requestId']);
    expect(again?.MessageAttributes?.lineId?.StringValue).toBe('line-1');
    expect(await receiveAll(dlqUrl)).toEqual([]);
    expect(await dlq.redrive({ id: 'gone' })).toEqual({ redriven: [], notDeleted: [], failed: [] });
  });

  it('purge deletes every message and says how many', async () => {
    const { parker, dlq } = await freshQueues();
    for (let i = 0; i < 13; i++) await parker.park({ body: META_BODY, attributes: ingressAttributes(), reason: 'bird_rejected_400', eventKey: `msg#1#wamid.${i}` });
    expect(await dlq.purge()).toBe(13);
    expect(await dlq.list()).toEqual([]);
  });

  describe('CLI', () => {
    // An empty DATA_DIR: no embedded gateway is running there.
    const emptyDataDir = mkdtempSync(join(tmpdir(), 'wa-ingress-dlq-cli-'));
    const io = (env: NodeJS.ProcessEnv = { DATA_DIR: emptyDataDir }) => {
      const out: string[] = [];
      const err: string[] = [];
      return { out, err, io: { env, out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
    };

    it('exits 2 with a clear message when the queue URLs are missing, or purge lacks --yes', async () => {
      const a = io();
      expect(await runDlqCli(['list'], a.io)).toBe(2);
      expect(a.err.join('\n')).toMatch(/No embedded gateway found.*npm start.*SQS_QUEUE_URL/);
      const d = io({ SQS_QUEUE_URL: 'http://127.0.0.1:9/000000000000/q' });
      expect(await runDlqCli(['list'], d.io)).toBe(2);
      expect(d.err.join('\n')).toMatch(/SQS_DLQ_URL not set/);
      const b = io();
      expect(await runDlqCli(['purge'], b.io)).toBe(2);
      expect(b.err.join('\n')).toMatch(/--yes/);
      const c = io();
      expect(await runDlqCli(['frobnicate'], c.io)).toBe(2);
      expect(c.err.join('\n')).toMatch(/Unknown command/);
    });

    it('lists, shows and redrives through loadConfig() and createAwsClients()', async () => {
      const { queueUrl, dlqUrl, parker } = await freshQueues();
      const id = await parker.park({ body: META_BODY, attributes: ingressAttributes(), reason: 'bird_rejected_400', eventKey: 'msg#1#wamid.CLI', lineId: 'line-2' });
      const env = {
        SQS_QUEUE_URL: queueUrl,
        SQS_DLQ_URL: dlqUrl,
        AWS_ENDPOINT_URL_SQS: standIns.endpoints.sqs,
        // A redrive asks the erasures table whether the contact was erased (none here: no table).
        AWS_ENDPOINT_URL_DYNAMODB: standIns.endpoints.dynamodb,
        AWS_REGION: REGION,
        // loadConfig() requires these whenever SQS_QUEUE_URL is set.
        WHATSAPP_VERIFY_TOKEN: 'unused',
        WHATSAPP_APP_SECRETS: 'unused',
        S3_BUCKET: 'unused-bucket',
      };
      const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
      process.env.AWS_ACCESS_KEY_ID = standIns.credentials.accessKeyId;
      process.env.AWS_SECRET_ACCESS_KEY = standIns.credentials.secretAccessKey;
      try {
        const list = io();
        expect(await runDlqCli(['list'], { ...list.io, env })).toBe(0);
        expect(list.out.find((l) => l.startsWith(id))?.split('\t')).toEqual([id, 'bird_rejected_400', 'msg#1#wamid.CLI', 'line-2', INGRESS.receivedAt, expect.any(String), String(Buffer.byteLength(META_BODY))]);

        const show = io();
        expect(await runDlqCli(['show', id], { ...show.io, env })).toBe(0);
        const shown = show.out.join('\n');
        expect(shown).toContain('reason:     bird_rejected_400');
        expect(shown).toContain('"object": "whatsapp_business_account"'); // pretty-printed body

        const redrive = io();
        expect(await runDlqCli(['redrive', id], { ...redrive.io, env })).toBe(0);
        expect(redrive.out).toContain(`redriven ${id}`);
        const missing = io();
        expect(await runDlqCli(['show', id], { ...missing.io, env })).toBe(1);
      } finally {
        process.env.AWS_ACCESS_KEY_ID = saved.id;
        process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
        if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
        if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
      }
    }, 20_000);
  });
});
