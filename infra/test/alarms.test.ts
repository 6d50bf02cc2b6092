import type { Template } from 'aws-cdk-lib/assertions';
import { isInboundDlq, isInboundQueue, logicalIdOf, onlyResource, resourcesOfType, defaultTemplate, taskDefinitionFor, type CfnResource } from './template';

let template: Template;
let topic: string;
let operatorAlarms: CfnResource[];

beforeAll(() => {
  template = defaultTemplate();
  topic = logicalIdOf(template, 'AWS::SNS::Topic');
  // Autoscaling creates alarms too; the operator's are the ones that notify the topic.
  operatorAlarms = Object.values(resourcesOfType(template, 'AWS::CloudWatch::Alarm')).filter((a) =>
    JSON.stringify(a.Properties.AlarmActions).includes(topic),
  );
});

function alarmOn(metricName: string, namespace: string, queueId?: string): CfnResource['Properties'] {
  const found = operatorAlarms.filter(
    (a) =>
      a.Properties.MetricName === metricName &&
      a.Properties.Namespace === namespace &&
      (queueId === undefined || JSON.stringify(a.Properties.Dimensions).includes(`"${queueId}"`)),
  );
  if (found.length !== 1) throw new Error(`expected one alarm on ${namespace}/${metricName}, found ${found.length}`);
  return found[0]!.Properties;
}

function logGroupOf(role: string): string {
  const options = taskDefinitionFor(template, role).container.LogConfiguration!.Options;
  return (options['awslogs-group'] as { Ref: string }).Ref;
}

describe('alarm topic', () => {
  it('every operator alarm notifies the one topic on ALARM and on OK', () => {
    template.resourceCountIs('AWS::SNS::Topic', 1);
    // Seven for the inbound path (the Meta watcher's LineProblems included), two for the archive, two for the outbound one (test/outbound.test.ts).
    expect(operatorAlarms).toHaveLength(11);
    for (const alarm of operatorAlarms) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: topic }]);
      expect(alarm.Properties.OKActions).toEqual([{ Ref: topic }]);
      expect(alarm.Properties.TreatMissingData).toBe('notBreaching');
      expect(alarm.Properties.AlarmDescription).toEqual(expect.any(String));
    }
  });

  it('subscribes the AlarmEmail parameter only when it is set', () => {
    template.hasParameter('AlarmEmail', { Type: 'String', Default: '' });
    const [, subscription] = onlyResource(template, 'AWS::SNS::Subscription');
    expect(subscription.Properties).toEqual(expect.objectContaining({ Protocol: 'email', Endpoint: { Ref: 'AlarmEmail' }, TopicArn: { Ref: topic } }));
    expect(subscription.Condition).toBe('HasAlarmEmail');
    template.hasCondition('HasAlarmEmail', { 'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'AlarmEmail' }, ''] }] });
  });
});

describe('queue alarms', () => {
  it('DLQ: any visible message', () => {
    const dlq = logicalIdOf(template, 'AWS::SQS::Queue', isInboundDlq);
    const alarm = alarmOn('ApproximateNumberOfMessagesVisible', 'AWS/SQS', dlq);
    expect(alarm).toEqual(
      expect.objectContaining({
        ComparisonOperator: 'GreaterThanThreshold',
        Threshold: 0,
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [dlq, 'QueueName'] } }],
      }),
    );
  });

  it('main queue: oldest message older than the threshold', () => {
    const main = logicalIdOf(template, 'AWS::SQS::Queue', isInboundQueue);
    const alarm = alarmOn('ApproximateAgeOfOldestMessage', 'AWS/SQS');
    expect(alarm).toEqual(
      expect.objectContaining({
        ComparisonOperator: 'GreaterThanThreshold',
        Threshold: 600,
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [main, 'QueueName'] } }],
      }),
    );
  });
});

describe('load balancer alarms', () => {
  it('on the ALB own 5XX and on the targets 5XX', () => {
    expect(alarmOn('HTTPCode_ELB_5XX_Count', 'AWS/ApplicationELB')).toEqual(
      expect.objectContaining({ Statistic: 'Sum', Period: 300, ComparisonOperator: 'GreaterThanOrEqualToThreshold' }),
    );
    const target = alarmOn('HTTPCode_Target_5XX_Count', 'AWS/ApplicationELB');
    expect(target).toEqual(expect.objectContaining({ Statistic: 'Sum', Period: 300 }));
    expect((target.Dimensions as { Name: string }[]).map((d) => d.Name).sort()).toEqual(['LoadBalancer', 'TargetGroup']);
  });
});

describe('log metric alarms', () => {
  it.each([
    ['SignatureRejected', 'signature_rejected', 'ingress'],
    ['MediaTokenRejected', 'media_token_rejected', 'worker'],
    ['ArchivePutFailed', 'archive_put_failed', 'ingress'],
    ['ArchiveDropped', 'archive_dropped', 'ingress'],
  ])('%s: counts {"event":"%s"} lines in the %s log group', (metricName, event, role) => {
    template.hasResourceProperties('AWS::Logs::MetricFilter', {
      FilterPattern: `{ $.event = "${event}" }`,
      LogGroupName: { Ref: logGroupOf(role) },
      MetricTransformations: [{ MetricNamespace: 'WaIngress', MetricName: metricName, MetricValue: '1' }],
    });
    expect(alarmOn(metricName, 'WaIngress')).toEqual(
      expect.objectContaining({ Statistic: 'Sum', ComparisonOperator: 'GreaterThanOrEqualToThreshold', Threshold: expect.any(Number) }),
    );
  });
});

describe('Meta watcher alarm', () => {
  it('LineProblems: the largest linesWithProblems of the worker\'s watch_round lines in 15 minutes, from 1', () => {
    template.hasResourceProperties('AWS::Logs::MetricFilter', {
      FilterPattern: '{ $.event = "watch_round" }',
      LogGroupName: { Ref: logGroupOf('worker') },
      MetricTransformations: [{ MetricNamespace: 'WaIngress', MetricName: 'LinesWithProblems', MetricValue: '$.linesWithProblems' }],
    });
    expect(alarmOn('LinesWithProblems', 'WaIngress')).toEqual(
      expect.objectContaining({ Statistic: 'Maximum', Period: 900, Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', TreatMissingData: 'notBreaching' }),
    );
  });
});
