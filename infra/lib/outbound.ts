import { CfnParameter, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { LOG_METRICS_NAMESPACE } from './alarms';
import { MAX_MESSAGE_BYTES } from './queues';

/** Must match src/aws/resources.ts: statuses find their record by wamid; the journal lists by line and by contact. */
export const OUTBOUND_BY_WAMID_INDEX = 'byWamid';
export const OUTBOUND_BY_LINE_INDEX = 'byLine';
export const OUTBOUND_BY_CONTACT_INDEX = 'byContact';
/**
 * The outbox (src/outbound/outbox-index.ts): sparse, only records still pending carry `outboxShard`;
 * sorted by `outboxAt`; it projects what the sweeper enqueues again, so it reads no item.
 */
export const OUTBOUND_PENDING_INDEX = 'byPending';
export const OUTBOUND_PENDING_PROJECTED = ['id', 'lineId', 'to', 'idempotencyKey', 'source', 'status', 'sendBody', 'createdAt'];
/** The `event` of the worker's log line when Graph refuses a line's token on a send (src/outbound/sender.ts). */
export const GRAPH_TOKEN_REJECTED_EVENT = 'graph_token_rejected';

export interface OutboundProps {
  visibilityTimeoutSeconds: number;
  maxReceiveCount: number;
  ingressTask: ecs.TaskDefinition;
  workerTask: ecs.TaskDefinition;
  workerLogGroup: logs.ILogGroup;
  /** The operators' alarm topic (GatewayAlarms). */
  topic: sns.ITopic;
  /** The console runs in the ingress tasks (its route is configured): it reads the replies and works their DLQ. */
  console?: boolean;
}

/**
 * The outbound path (replies to WhatsApp users): its FIFO queue and FIFO DLQ, the outbound records
 * table, what each role may do with them, their environment, and their alarms. Kept apart from the
 * inbound constructs so both evolve without touching each other.
 */
export class OutboundPipeline extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly table: dynamodb.Table;
  readonly publicBaseUrl: CfnParameter;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: OutboundProps) {
    super(scope, id);
    const stack = Stack.of(this);

    // High-throughput FIFO: dedup and throughput per message group (`<lineId>:<to>`), so one busy
    // recipient never limits another and the 300 TPS per-queue FIFO quota does not apply.
    const highThroughput = {
      fifo: true,
      deduplicationScope: sqs.DeduplicationScope.MESSAGE_GROUP,
      fifoThroughputLimit: sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      maxMessageSizeBytes: MAX_MESSAGE_BYTES,
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.RETAIN,
    };
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', highThroughput);
    this.queue = new sqs.Queue(this, 'Queue', {
      ...highThroughput,
      visibilityTimeout: Duration.seconds(props.visibilityTimeoutSeconds),
      receiveMessageWaitTime: Duration.seconds(20),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount },
    });

    this.table = new dynamodb.Table(this, 'RecordsTable', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiresAt',
      // Each record is the proof that a reply was sent (exactly once): keep it when the stack goes.
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: OUTBOUND_BY_WAMID_INDEX,
      partitionKey: { name: 'wamid', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.KEYS_ONLY,
    });
    for (const [indexName, partition] of [
      [OUTBOUND_BY_LINE_INDEX, 'lineId'],
      [OUTBOUND_BY_CONTACT_INDEX, 'contactKey'],
    ] as const) {
      this.table.addGlobalSecondaryIndex({
        indexName,
        partitionKey: { name: partition, type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'createdAt', type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }
    this.table.addGlobalSecondaryIndex({
      indexName: OUTBOUND_PENDING_INDEX,
      partitionKey: { name: 'outboxShard', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'outboxAt', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.INCLUDE,
      nonKeyAttributes: OUTBOUND_PENDING_PROJECTED,
    });

    // CfnParameter logical ids come from the construct id: created on the stack to stay `PublicBaseUrl`.
    this.publicBaseUrl = new CfnParameter(stack, 'PublicBaseUrl', {
      type: 'String',
      default: '',
      description:
        'https://<the host of CertificateArn>, as Bird calls it: Bird signs the URL of its webhook, and behind the load balancer the gateway rebuilds it from this',
      allowedPattern: '^(https://[A-Za-z0-9.-]+(:[0-9]+)?)?$',
      constraintDescription: 'must be https://host, without a path',
    });

    const environment: Record<string, string> = {
      SQS_OUTBOUND_QUEUE_URL: this.queue.queueUrl,
      SQS_OUTBOUND_DLQ_URL: this.deadLetterQueue.queueUrl,
      DYNAMODB_OUTBOUND_TABLE: this.table.tableName,
      PUBLIC_BASE_URL: this.publicBaseUrl.valueAsString,
    };
    for (const task of [props.ingressTask, props.workerTask]) {
      for (const [name, value] of Object.entries(environment)) task.defaultContainer!.addEnvironment(name, value);
    }
    for (const statement of outboundIngressStatements(this)) props.ingressTask.addToTaskRolePolicy(statement);
    for (const statement of outboundWorkerStatements(this)) props.workerTask.addToTaskRolePolicy(statement);
    if (props.console) for (const statement of outboundConsoleStatements(this)) props.ingressTask.addToTaskRolePolicy(statement);

    this.alarm(props.topic, 'OutboundDeadLetters', {
      alarmDescription:
        'Replies in the outbound DLQ: Meta refused them for good (131047 outside the 24 h window, bad body...) or they failed maxReceiveCount times. `npm run dlq -- list` on SQS_OUTBOUND_DLQ_URL names the reason',
      metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
    });
    const tokenFailures = new logs.MetricFilter(this, 'GraphTokenRejectedFilter', {
      logGroup: props.workerLogGroup,
      filterPattern: logs.FilterPattern.stringValue('$.event', '=', GRAPH_TOKEN_REJECTED_EVENT),
      metricNamespace: LOG_METRICS_NAMESPACE,
      // The log-side twin of wa_ingress_graph_token_failures_total.
      metricName: 'GraphTokenFailures',
      metricValue: '1',
    }).metric();
    this.alarm(props.topic, 'GraphTokenFailures', {
      alarmDescription:
        "Graph refused a line's access token on a send (190, 10, 200): replies wait and retry until the line's accessToken secret holds a valid token",
      metric: tokenFailures.with({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
  }

  private alarm(topic: sns.ITopic, id: string, props: cloudwatch.AlarmProps): void {
    const alarm = new cloudwatch.Alarm(this, id, { treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING, ...props });
    alarm.addAlarmAction(new actions.SnsAction(topic));
    alarm.addOkAction(new actions.SnsAction(topic));
    this.alarms.push(alarm);
  }
}

/**
 * The ingress accepts replies (send API, Bird webhooks): a conditional put of the record (or a read
 * of the one the key already made), the FIFO send, and the status lookup of GET /v1/.../messages/:id;
 * the same UpdateItem and GetItem settle the statuses of our replies that echo their id (the ingress
 * settles those a line does not forward itself: src/ingress/status-settlement.ts; never by wamid);
 * the contact API counts a contact's replies of the last 30 days on the byContact index (`sent`).
 */
function outboundIngressStatements(o: OutboundPipeline): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({ sid: 'AcceptReplies', actions: ['sqs:SendMessage'], resources: [o.queue.queueArn] }),
    new iam.PolicyStatement({
      sid: 'RecordReplies',
      actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
      resources: [o.table.tableArn],
    }),
    new iam.PolicyStatement({ sid: 'CountRepliesToContact', actions: ['dynamodb:Query'], resources: [`${o.table.tableArn}/index/${OUTBOUND_BY_CONTACT_INDEX}`] }),
  ];
}

/**
 * The console (src/console) in the ingress task: replies listed by line and by recipient (the
 * records themselves are read with the ingress's GetItem), and the outbound DLQ's list, redrive and
 * purge (the redrive's SendMessage to the queue is the ingress's AcceptReplies).
 */
function outboundConsoleStatements(o: OutboundPipeline): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'ListReplies',
      actions: ['dynamodb:Query'],
      resources: [`${o.table.tableArn}/index/${OUTBOUND_BY_LINE_INDEX}`, `${o.table.tableArn}/index/${OUTBOUND_BY_CONTACT_INDEX}`],
    }),
    new iam.PolicyStatement({
      sid: 'OperateOutboundDeadLetterQueue',
      // SendMessage and GetQueueAttributes: the FIFO DLQ's list moves a message that shares its group into one of its own (src/queue/dlq-scanner.ts).
      actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:SendMessage', 'sqs:GetQueueAttributes'],
      resources: [o.deadLetterQueue.queueArn],
    }),
  ];
}

/**
 * The worker accepts a Flow's synchronous replies, sends what is queued (claim, settle, park),
 * settles records from status webhooks (by wamid when Meta echoed no outbound id), and sweeps the
 * outbox (the byPending index) for replies whose job never reached the queue.
 */
function outboundWorkerStatements(o: OutboundPipeline): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'SendReplies',
      // SendMessage: the worker accepts a Flow's `replies` itself before completing the inbound event.
      actions: ['sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes'],
      resources: [o.queue.queueArn],
    }),
    new iam.PolicyStatement({ sid: 'ParkReplies', actions: ['sqs:SendMessage'], resources: [o.deadLetterQueue.queueArn] }),
    new iam.PolicyStatement({
      sid: 'TrackReplies',
      actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
      resources: [o.table.tableArn],
    }),
    new iam.PolicyStatement({
      sid: 'FindRepliesByWamid',
      actions: ['dynamodb:Query'],
      resources: [`${o.table.tableArn}/index/${OUTBOUND_BY_WAMID_INDEX}`],
    }),
    new iam.PolicyStatement({
      sid: 'SweepOutbox',
      actions: ['dynamodb:Query'],
      resources: [`${o.table.tableArn}/index/${OUTBOUND_PENDING_INDEX}`],
    }),
  ];
}
