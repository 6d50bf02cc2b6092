import { CfnCondition, Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** Namespace of the metrics made from the app's log lines. */
export const LOG_METRICS_NAMESPACE = 'WaIngress';

/**
 * The `event` field of the pino lines the app writes when it rejects a webhook's signature and when
 * Graph refuses a line's token for media. Renaming them in src/ silently breaks these alarms.
 */
export const SIGNATURE_REJECTED_EVENT = 'signature_rejected';
export const MEDIA_TOKEN_REJECTED_EVENT = 'media_token_rejected';
/** src/archive/archive-writer.ts: a failed archive PUT (retried), and records dropped because the archive buffer was full. */
export const ARCHIVE_PUT_FAILED_EVENT = 'archive_put_failed';
export const ARCHIVE_DROPPED_EVENT = 'archive_dropped';
/** The Meta watcher's end-of-round line (src/watch/watcher.ts WATCH_ROUND_EVENT), carrying `linesWithProblems`. */
export const WATCH_ROUND_EVENT = 'watch_round';

export interface GatewayAlarmsProps {
  queue: sqs.IQueue;
  deadLetterQueue: sqs.IQueue;
  loadBalancer: elbv2.ApplicationLoadBalancer;
  targetGroup: elbv2.ApplicationTargetGroup;
  ingressLogGroup: logs.ILogGroup;
  workerLogGroup: logs.ILogGroup;
  alarmEmail: string;
  hasAlarmEmail: CfnCondition;
  /** Seconds the oldest message may wait before someone is paged. */
  oldestMessageAlarmSeconds: number;
  /** 5XX answers in five minutes, at the ALB or from the tasks, before someone is paged. */
  http5xxThreshold: number;
  /** Rejected signatures in five minutes: a few are internet noise, a burst is a wrong app secret. */
  signatureRejectedThreshold: number;
}

/** Every alarm goes to one topic, on both ALARM and OK so the page also says when it cleared. */
export class GatewayAlarms extends Construct {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: GatewayAlarmsProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Topic', { displayName: 'wa-ingress alarms', enforceSSL: true });
    const subscription = new sns.Subscription(this, 'Email', {
      topic: this.topic,
      protocol: sns.SubscriptionProtocol.EMAIL,
      endpoint: props.alarmEmail,
    });
    (subscription.node.defaultChild as sns.CfnSubscription).cfnOptions.condition = props.hasAlarmEmail;

    const fiveMinutes = Duration.minutes(5);

    this.alarm('DeadLetters', {
      alarmDescription:
        'Messages in the DLQ: events that failed permanently or crashed the worker maxReceiveCount times. Runbook: docs/DEPLOY.md#dlq-alarm',
      metric: props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
    });
    this.alarm('OldestMessage', {
      alarmDescription: 'The worker is not keeping up: the oldest webhook has waited too long (Bird or Graph slow, workers crashing, scaling at max)',
      metric: props.queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: 'Maximum' }),
      threshold: props.oldestMessageAlarmSeconds,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
    });
    this.alarm('LoadBalancer5xx', {
      alarmDescription: 'The ALB itself answers 5XX: no healthy ingress task (check /readyz, SQS reachability, deploy rollbacks)',
      metric: props.loadBalancer.metrics.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT, { period: fiveMinutes, statistic: 'Sum' }),
      threshold: props.http5xxThreshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
    this.alarm('Target5xx', {
      alarmDescription: 'Ingress answers 5XX (503 when SQS does not accept the webhook); Meta retries, but check SQS and the task logs',
      metric: props.targetGroup.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, { period: fiveMinutes, statistic: 'Sum' }),
      threshold: props.http5xxThreshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });

    const signatureRejected = this.logEventMetric('SignatureRejected', props.ingressLogGroup, SIGNATURE_REJECTED_EVENT);
    this.alarm('SignatureRejected', {
      alarmDescription:
        'Webhooks rejected for a bad X-Hub-Signature-256: usually a Meta app secret missing from WHATSAPP_APP_SECRETS after a rotation',
      metric: signatureRejected.with({ period: fiveMinutes, statistic: 'Sum' }),
      threshold: props.signatureRejectedThreshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
    const mediaTokenRejected = this.logEventMetric('MediaTokenRejected', props.workerLogGroup, MEDIA_TOKEN_REJECTED_EVENT);
    this.alarm('MediaTokenRejected', {
      alarmDescription: "Graph refused a line's access token for media: the token expired or was revoked; put a new one in the line's secret",
      metric: mediaTokenRejected.with({ period: fiveMinutes, statistic: 'Sum' }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });

    const archiveFailing = this.logEventMetric('ArchivePutFailed', props.ingressLogGroup, ARCHIVE_PUT_FAILED_EVENT);
    this.alarm('ArchivePutFailed', {
      alarmDescription:
        'The ingress cannot write the archive of signed webhooks to S3 (retried; webhooks are still acknowledged and queued). Check S3 and the task role. Runbook: docs/DEPLOY.md#archive-alarms',
      metric: archiveFailing.with({ period: fiveMinutes, statistic: 'Sum' }),
      threshold: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
    const archiveDropped = this.logEventMetric('ArchiveDropped', props.ingressLogGroup, ARCHIVE_DROPPED_EVENT);
    this.alarm('ArchiveDropped', {
      alarmDescription:
        'Accepted webhooks were not archived: the archive buffer filled while S3 failed. They are on the queue, but a replay cannot bring them back. Runbook: docs/DEPLOY.md#archive-alarms',
      metric: archiveDropped.with({ period: fiveMinutes, statistic: 'Sum' }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });

    // The watcher ends each round (META_WATCH_INTERVAL_SECONDS, 600 by default) with the count of
    // lines that have a problem: the alarm holds while one stays, and clears with the round that fixes it.
    const lineProblems = this.logFieldMetric('LinesWithProblems', props.workerLogGroup, WATCH_ROUND_EVENT, 'linesWithProblems');
    this.alarm('LineProblems', {
      alarmDescription:
        "A line has a problem on Meta's side (app_not_subscribed, callback_elsewhere, token_rejected, number_not_connected, quality_red, graph_unreachable, inbound_silent): see the console's Overview. Runbook: docs/DEPLOY.md#line-problems",
      metric: lineProblems.with({ period: Duration.minutes(15), statistic: 'Maximum' }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
  }

  /** The value of a numeric field of the app's JSON log lines whose `event` field has this value. */
  private logFieldMetric(id: string, logGroup: logs.ILogGroup, event: string, field: string): cloudwatch.Metric {
    const filter = new logs.MetricFilter(this, `${id}Filter`, {
      logGroup,
      filterPattern: logs.FilterPattern.stringValue('$.event', '=', event),
      metricNamespace: LOG_METRICS_NAMESPACE,
      metricName: id,
      metricValue: `$.${field}`,
    });
    return filter.metric();
  }

  /** A count metric of the app's JSON log lines whose `event` field has this value. */
  private logEventMetric(id: string, logGroup: logs.ILogGroup, event: string): cloudwatch.Metric {
    const filter = new logs.MetricFilter(this, `${id}Filter`, {
      logGroup,
      filterPattern: logs.FilterPattern.stringValue('$.event', '=', event),
      metricNamespace: LOG_METRICS_NAMESPACE,
      metricName: id,
      metricValue: '1',
    });
    return filter.metric();
  }

  private alarm(id: string, props: cloudwatch.AlarmProps): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, {
      // No data means no traffic or no failures, never a reason to page.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      ...props,
    });
    alarm.addAlarmAction(new actions.SnsAction(this.topic));
    alarm.addOkAction(new actions.SnsAction(this.topic));
    this.alarms.push(alarm);
    return alarm;
  }
}
