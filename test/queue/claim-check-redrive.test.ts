import { createHash } from 'node:crypto';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { createRegistry } from '../../src/observability/metrics';
import { ClaimCheckReader } from '../../src/queue/claim-check-reader';
import { S3ClaimCheckRefresher, S3ClaimCheckWriter } from '../../src/queue/claim-check-writer';
import { DeadLetterQueue, DlqParker } from '../../src/queue/dlq';
import { stringAttributes } from '../../src/queue/message';
import { startAwsHarness, type AwsHarness } from '../support/aws';

let aws: AwsHarness;
beforeAll(async () => {
  aws = await startAwsHarness();
});
afterAll(async () => aws.stop());

const head = (key: string) => aws.clients.s3.send(new HeadObjectCommand({ Bucket: aws.names.bucket, Key: key }));

describe('claim-check objects outlive their pointers', () => {
  it('a redrive copies the object onto itself (a new lifecycle window) before the pointer goes back; the body still resolves', async () => {
    const { s3, sqs } = aws.clients;
    const bucket = aws.names.bucket;
    const body = Buffer.from(JSON.stringify({ object: 'whatsapp_business_account', entry: [], pad: 'x'.repeat(2000) }));
    const sha256 = createHash('sha256').update(body).digest('hex');
    const pointer = await new S3ClaimCheckWriter({ s3, bucket }).put(body, sha256);
    expect((await head(pointer.claimCheck.key)).Metadata?.refreshed).toBeUndefined();

    const parker = new DlqParker({ sqs, dlqUrl: aws.standIns.dlqUrl, registry: createRegistry({ defaultMetrics: false }) });
    const attributes = stringAttributes({ claimCheck: `s3://${bucket}/${pointer.claimCheck.key}`, requestId: 'late-redrive' });
    await parker.park({ body: JSON.stringify(pointer), attributes, reason: 'unrouted', eventKey: 'msg#1#wamid.late' });
    const gone = { claimCheck: { ...pointer.claimCheck, key: `claim-check/${'e'.repeat(64)}.json`, sha256: 'e'.repeat(64) } };
    await parker.park({ body: JSON.stringify(gone), attributes: stringAttributes({ claimCheck: `s3://${bucket}/${gone.claimCheck.key}`, requestId: 'gone' }), reason: 'unrouted' });

    const redriveAt = new Date();
    const dlq = new DeadLetterQueue({ sqs, queueUrl: aws.standIns.queueUrl, dlqUrl: aws.standIns.dlqUrl, waitTimeSeconds: 0, holdSeconds: 2, claimChecks: new S3ClaimCheckRefresher({ s3, bucket }) });
    const result = await dlq.redrive({ all: true });

    expect(result.redriven).toHaveLength(1);
    expect(result.failed).toEqual([{ id: expect.any(String), error: expect.stringContaining('no longer exists') }]);
    // S3 makes the copy a new object (lifecycle days count from there); s3rver keeps the file's
    // mtime on a copy onto itself, so the stand-in shows it through the replaced metadata.
    const refreshed = (await head(pointer.claimCheck.key)).Metadata!;
    expect(new Date(refreshed.refreshed!).getTime()).toBeGreaterThanOrEqual(redriveAt.getTime() - 1000);
    expect(refreshed.sha256).toBe(sha256);
    const [redriven, ...others] = await aws.drainQueue();
    expect(others).toHaveLength(0);
    expect(redriven!.MessageAttributes?.requestId?.StringValue).toBe('late-redrive');
    const resolved = await new ClaimCheckReader({ s3, bucket }).resolve(redriven!.MessageAttributes!.claimCheck!.StringValue!, redriven!.Body!);
    expect(resolved.equals(body)).toBe(true);
    // The pointer whose object is gone stays in the DLQ, where the operator sees why it was not redriven.
    const left = await aws.drainQueue(aws.standIns.dlqUrl);
    expect(left.map((m) => m.MessageAttributes?.requestId?.StringValue)).toEqual(['gone']);
  });
});
