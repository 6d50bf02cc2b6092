import { Match, type Template } from 'aws-cdk-lib/assertions';
import { defaultTemplate, environmentOf, logicalIdOf, resourcesOfType, taskDefinitionFor, type CfnResource } from './template';

let template: Template;
let queue: string;
let dlq: string;
let table: string;
let topic: string;

beforeAll(() => {
  template = defaultTemplate();
  queue = logicalIdOf(template, 'AWS::SQS::Queue', (_q, id) => id.startsWith('OutboundQueue'));
  dlq = logicalIdOf(template, 'AWS::SQS::Queue', (_q, id) => id.startsWith('OutboundDeadLetterQueue'));
  table = logicalIdOf(template, 'AWS::DynamoDB::Table', (_t, id) => id.startsWith('OutboundRecordsTable'));
  topic = logicalIdOf(template, 'AWS::SNS::Topic');
});

const resource = (id: string) => template.toJSON().Resources[id] as CfnResource & { DeletionPolicy?: string };

describe('outbound queues', () => {
  it.each([
    ['queue', () => queue],
    ['DLQ', () => dlq],
  ])('%s: FIFO in high-throughput mode, SSE, 14 days, retained', (_name, id) => {
    const q = resource(id());
    expect(q.Properties).toEqual(
      expect.objectContaining({
        FifoQueue: true,
        DeduplicationScope: 'messageGroup',
        FifoThroughputLimit: 'perMessageGroupId',
        SqsManagedSseEnabled: true,
        MessageRetentionPeriod: 14 * 86400,
        MaximumMessageSize: 1048576,
      }),
    );
    // The outbound id is the dedup id: content-based dedup would merge two identical replies.
    expect(q.Properties.ContentBasedDeduplication).toBeUndefined();
    expect(q.DeletionPolicy).toBe('Retain');
  });

  it('the queue redrives to its FIFO DLQ after MaxReceiveCount, with the shared visibility timeout', () => {
    expect(resource(queue).Properties).toEqual(
      expect.objectContaining({
        VisibilityTimeout: { Ref: 'VisibilityTimeoutSeconds' },
        ReceiveMessageWaitTimeSeconds: 20,
        RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [dlq, 'Arn'] }, maxReceiveCount: { Ref: 'MaxReceiveCount' } },
      }),
    );
  });
});

describe('outbound records table', () => {
  it('on-demand, pk key, TTL on expiresAt, the wamid index statuses use, the journal indexes and the outbox; retained with PITR', () => {
    const t = resource(table);
    expect(t.DeletionPolicy).toBe('Retain');
    expect(t.Properties).toEqual(
      expect.objectContaining({
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      }),
    );
    const indexes = t.Properties.GlobalSecondaryIndexes as { IndexName: string; KeySchema: unknown; Projection: unknown }[];
    expect(indexes).toEqual([
      { IndexName: 'byWamid', KeySchema: [{ AttributeName: 'wamid', KeyType: 'HASH' }], Projection: { ProjectionType: 'KEYS_ONLY' } },
      {
        IndexName: 'byLine',
        KeySchema: [
          { AttributeName: 'lineId', KeyType: 'HASH' },
          { AttributeName: 'createdAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
      {
        IndexName: 'byContact',
        KeySchema: [
          { AttributeName: 'contactKey', KeyType: 'HASH' },
          { AttributeName: 'createdAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
      {
        // Sparse: only pending records carry outboxShard. It projects what the sweeper enqueues.
        IndexName: 'byPending',
        KeySchema: [
          { AttributeName: 'outboxShard', KeyType: 'HASH' },
          { AttributeName: 'outboxAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['id', 'lineId', 'to', 'idempotencyKey', 'source', 'status', 'sendBody', 'createdAt'] },
      },
    ]);
  });
});

describe('outbound wiring', () => {
  it.each(['ingress', 'worker'])('%s gets the outbound queues, the records table and PUBLIC_BASE_URL', (role) => {
    expect(environmentOf(taskDefinitionFor(template, role).container)).toEqual(
      expect.objectContaining({
        SQS_OUTBOUND_QUEUE_URL: { Ref: queue },
        SQS_OUTBOUND_DLQ_URL: { Ref: dlq },
        DYNAMODB_OUTBOUND_TABLE: { Ref: table },
        PUBLIC_BASE_URL: { Ref: 'PublicBaseUrl' },
      }),
    );
  });

  it('PublicBaseUrl is an https origin without a path (Bird signs the URL it calls)', () => {
    template.hasParameter('PublicBaseUrl', { Type: 'String', Default: '', AllowedPattern: Match.stringLikeRegexp('https') });
    const pattern = new RegExp((template.toJSON().Parameters.PublicBaseUrl as { AllowedPattern: string }).AllowedPattern);
    expect(['', 'https://wa.example.com', 'https://wa.example.com:8443'].map((v) => pattern.test(v))).toEqual([true, true, true]);
    expect(['http://wa.example.com', 'https://wa.example.com/', 'https://wa.example.com/x'].map((v) => pattern.test(v))).toEqual([false, false, false]);
  });
});

describe('outbound alarms', () => {
  const alarms = () =>
    Object.values(resourcesOfType(template, 'AWS::CloudWatch::Alarm')).filter((a) => JSON.stringify(a.Properties.AlarmActions).includes(topic));

  it('any reply in the outbound DLQ pages, on ALARM and OK', () => {
    const found = alarms().filter((a) => JSON.stringify(a.Properties.Dimensions ?? []).includes(`"${dlq}"`));
    expect(found.map((a) => a.Properties)).toEqual([
      expect.objectContaining({
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Namespace: 'AWS/SQS',
        ComparisonOperator: 'GreaterThanThreshold',
        Threshold: 0,
        OKActions: [{ Ref: topic }],
        TreatMissingData: 'notBreaching',
      }),
    ]);
  });

  it('a Graph token refusal on a send pages: the worker\'s {"event":"graph_token_rejected"} lines, counted', () => {
    const workerLogGroup = (taskDefinitionFor(template, 'worker').container.LogConfiguration!.Options['awslogs-group'] as { Ref: string }).Ref;
    template.hasResourceProperties('AWS::Logs::MetricFilter', {
      FilterPattern: '{ $.event = "graph_token_rejected" }',
      LogGroupName: { Ref: workerLogGroup },
      MetricTransformations: [{ MetricNamespace: 'WaIngress', MetricName: 'GraphTokenFailures', MetricValue: '1' }],
    });
    expect(alarms().filter((a) => a.Properties.MetricName === 'GraphTokenFailures').map((a) => a.Properties)).toEqual([
      expect.objectContaining({ Namespace: 'WaIngress', Statistic: 'Sum', Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold' }),
    ]);
  });
});
