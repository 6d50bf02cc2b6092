import { Match, type Template } from 'aws-cdk-lib/assertions';
import { isInboundDlq, isInboundQueue, isTurnQueue, onlyResource, resourcesOfType, defaultTemplate, taskDefinitionFor } from './template';

let template: Template;
beforeAll(() => {
  template = defaultTemplate();
});

function queue(kind: 'main' | 'dlq') {
  const queues = Object.entries(resourcesOfType(template, 'AWS::SQS::Queue'));
  const found = queues.find(([id, q]) => (kind === 'main' ? isInboundQueue : isInboundDlq)(q, id));
  if (!found) throw new Error(`no ${kind} queue`);
  return { id: found[0], props: found[1].Properties, deletionPolicy: (template.toJSON().Resources[found[0]] as { DeletionPolicy?: string }).DeletionPolicy };
}

describe('queues', () => {
  it.each(['main', 'dlq'] as const)('%s queue: SSE, 1 MiB messages, 14 days, retained', (kind) => {
    const q = queue(kind);
    expect(q.props.SqsManagedSseEnabled).toBe(true);
    expect(q.props.MaximumMessageSize).toBe(1048576);
    expect(q.props.MessageRetentionPeriod).toBe(14 * 86400);
    expect(q.deletionPolicy).toBe('Retain');
  });

  it.each(['main', 'dlq'] as const)('%s queue: FIFO in high-throughput mode (dedup and quota per conversation)', (kind) => {
    const q = queue(kind);
    expect(q.props).toMatchObject({ FifoQueue: true, DeduplicationScope: 'messageGroup', FifoThroughputLimit: 'perMessageGroupId' });
    // The ingress always sets the dedup id (the body's sha256): content-based dedup would hash the claim-check pointer instead.
    expect(q.props.ContentBasedDeduplication).toBeUndefined();
  });

  it('main queue: visibility timeout and redrive count come from parameters', () => {
    const main = queue('main');
    const dlq = queue('dlq');
    expect(main.props.VisibilityTimeout).toEqual({ Ref: 'VisibilityTimeoutSeconds' });
    expect(main.props.ReceiveMessageWaitTimeSeconds).toBe(20);
    expect(main.props.RedrivePolicy).toEqual({
      deadLetterTargetArn: { 'Fn::GetAtt': [dlq.id, 'Arn'] },
      maxReceiveCount: { Ref: 'MaxReceiveCount' },
    });
    template.hasParameter('VisibilityTimeoutSeconds', { Type: 'Number', Default: 30, MinValue: 20 });
    template.hasParameter('MaxReceiveCount', { Type: 'Number', Default: 20, MinValue: 1 });
  });

  it('the turn timer queue: standard (FIFO takes no per-message delay), SSE, 14 days, 30 s visibility, retained', () => {
    const timers = Object.entries(resourcesOfType(template, 'AWS::SQS::Queue')).filter(([id, q]) => isTurnQueue(q, id));
    expect(timers).toHaveLength(1);
    const [id, q] = timers[0]!;
    expect(q.Properties).toMatchObject({ SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 86400, VisibilityTimeout: 30 });
    expect(q.Properties.FifoQueue).toBeUndefined();
    expect(q.Properties.RedrivePolicy).toBeUndefined();
    expect((template.toJSON().Resources[id] as { DeletionPolicy?: string }).DeletionPolicy).toBe('Retain');
  });

  it('refuses plain-HTTP access to every queue (inbound and outbound, each with its DLQ, and the turn timers)', () => {
    const policies = Object.values(resourcesOfType(template, 'AWS::SQS::QueuePolicy'));
    expect(policies).toHaveLength(5);
    for (const p of policies) {
      expect(p.Properties.PolicyDocument).toEqual(
        expect.objectContaining({
          Statement: [expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })],
        }),
      );
    }
  });
});

describe('DynamoDB', () => {
  it('lines table: on-demand, lineId key, byPhoneNumberId and byWabaId indexes (ALL), point-in-time recovery', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: 'lineId', KeyType: 'HASH' }],
        AttributeDefinitions: Match.arrayWith([
          { AttributeName: 'lineId', AttributeType: 'S' },
          { AttributeName: 'phoneNumberId', AttributeType: 'S' },
          { AttributeName: 'wabaId', AttributeType: 'S' },
        ]),
        GlobalSecondaryIndexes: [
          {
            IndexName: 'byPhoneNumberId',
            KeySchema: [{ AttributeName: 'phoneNumberId', KeyType: 'HASH' }],
            Projection: { ProjectionType: 'ALL' },
          },
          {
            IndexName: 'byWabaId',
            KeySchema: [{ AttributeName: 'wabaId', KeyType: 'HASH' }],
            Projection: { ProjectionType: 'ALL' },
          },
        ],
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      }),
    });
  });

  it('dedupe table: on-demand, pk key, TTL on expiresAt, the journal index keys', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        AttributeDefinitions: ['pk', 'lineId', 'receivedAt', 'wamid', 'contactHash'].map((AttributeName) => ({ AttributeName, AttributeType: 'S' })),
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      }),
    });
    // Lines, dedupe, the outbound records (test/outbound.test.ts), the erasures and the conversation state.
    template.resourceCountIs('AWS::DynamoDB::Table', 5);
  });

  it('contacts table: on-demand, pk key, KEYS_ONLY indexes by wa_id, BSUID and group (names the app queries)', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        GlobalSecondaryIndexes: [
          ['byWaId', 'waIdKey'],
          ['byUserId', 'userIdKey'],
          ['byGroup', 'groupKey'],
        ].map(([IndexName, hash]) => ({ IndexName, KeySchema: [{ AttributeName: hash, KeyType: 'HASH' }], Projection: { ProjectionType: 'KEYS_ONLY' } })),
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      }),
    });
  });
});

describe('media bucket', () => {
  it('blocks public access, encrypts and is retained', () => {
    template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
      }),
    });
  });

  it('expires media/ after the parameter and claim-check/ after 30 days: main-queue + DLQ retention (14 + 14) + margin', () => {
    const [, bucket] = onlyResource(template, 'AWS::S3::Bucket');
    const rules = (bucket.Properties.LifecycleConfiguration as { Rules: Record<string, unknown>[] }).Rules;
    expect(rules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Prefix: 'media/', ExpirationInDays: { Ref: 'MediaExpiryDays' }, Status: 'Enabled' }),
        expect.objectContaining({ Prefix: 'claim-check/', ExpirationInDays: 30, Status: 'Enabled' }),
        expect.objectContaining({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }),
      ]),
    );
    template.hasParameter('MediaExpiryDays', { Type: 'Number', Default: 30 });
  });

  it('keeps erasures (the audit trail) without TTL, finds pending ones by a sparse index, and tells the tasks the media retention', () => {
    const [, table] = Object.entries(resourcesOfType(template, 'AWS::DynamoDB::Table')).find(([id]) => id.startsWith('ErasureErasuresTable'))!;
    expect(table.Properties).toMatchObject({
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      GlobalSecondaryIndexes: [expect.objectContaining({ IndexName: 'byPending', KeySchema: [{ AttributeName: 'pending', KeyType: 'HASH' }, { AttributeName: 'requestedAt', KeyType: 'RANGE' }] })],
    });
    expect(table.Properties.TimeToLiveSpecification).toBeUndefined();
    for (const role of ['ingress', 'worker']) {
      const env = taskDefinitionFor(template, role).container.Environment ?? [];
      expect(env).toEqual(expect.arrayContaining([{ Name: 'MEDIA_RETENTION_DAYS', Value: { Ref: 'MediaExpiryDays' } }, expect.objectContaining({ Name: 'DYNAMODB_ERASURES_TABLE' })]));
    }
  });

  it('expires archive/ (signed webhook originals) after ArchiveRetentionDays, 30 by default', () => {
    const [, bucket] = onlyResource(template, 'AWS::S3::Bucket');
    const rules = (bucket.Properties.LifecycleConfiguration as { Rules: Record<string, unknown>[] }).Rules;
    expect(rules).toEqual(expect.arrayContaining([expect.objectContaining({ Prefix: 'archive/', ExpirationInDays: { Ref: 'ArchiveRetentionDays' }, Status: 'Enabled' })]));
    template.hasParameter('ArchiveRetentionDays', { Type: 'Number', Default: 30, MinValue: 1 });
  });

  it('allows TLS only', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });
});
