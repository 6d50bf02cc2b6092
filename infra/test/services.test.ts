import { Match, type Template } from 'aws-cdk-lib/assertions';
import { environmentOf, resourcesOfType, serviceFor, defaultTemplate, taskDefinitionFor } from './template';

let template: Template;
beforeAll(() => {
  template = defaultTemplate();
});

function scalingPolicies(serviceId: string) {
  const target = Object.entries(resourcesOfType(template, 'AWS::ApplicationAutoScaling::ScalableTarget')).find(([, t]) =>
    JSON.stringify(t.Properties.ResourceId).includes(serviceId),
  );
  if (!target) throw new Error(`no scalable target for ${serviceId}`);
  const policies = Object.values(resourcesOfType(template, 'AWS::ApplicationAutoScaling::ScalingPolicy')).filter(
    (p) => JSON.stringify(p.Properties.ScalingTargetId) === JSON.stringify({ Ref: target[0] }),
  );
  return { target: target[1].Properties, policies: policies.map((p) => p.Properties) };
}

describe.each(['ingress', 'worker'])('%s task', (role) => {
  it(`runs the image parameter with command ["${role}"] on Fargate`, () => {
    const task = taskDefinitionFor(template, role);
    expect(task.container.Image).toEqual({ Ref: 'ImageUri' });
    expect(task.container.Command).toEqual([role]);
    expect(task.props.RequiresCompatibilities).toEqual(['FARGATE']);
    expect(task.props.NetworkMode).toBe('awsvpc');
    // The drain bound the app is given must end before ECS's SIGKILL, with room for the exit,
    // and must outlast the worker's 20 s long poll plus its 3 s hand-back and flush margin.
    const bound = Number(environmentOf(task.container).SHUTDOWN_TIMEOUT_MS);
    expect(bound).toBeGreaterThanOrEqual(20_000 + 3000);
    expect(task.container.StopTimeout! * 1000).toBeGreaterThanOrEqual(bound + 5000);
    expect(task.container.StopTimeout).toBeLessThanOrEqual(120); // Fargate's ceiling
  });

  it('runs in private subnets without a public IP', () => {
    const service = serviceFor(template, role);
    expect(service.props.LaunchType).toBe('FARGATE');
    const network = (service.props.NetworkConfiguration as { AwsvpcConfiguration: { AssignPublicIp: string; Subnets: { Ref: string }[] } })
      .AwsvpcConfiguration;
    expect(network.AssignPublicIp).toBe('DISABLED');
    expect(network.Subnets.map((s) => s.Ref)).toEqual([expect.stringMatching(/privateSubnet/i), expect.stringMatching(/privateSubnet/i)]);
    expect(service.props.DeploymentConfiguration).toEqual(
      expect.objectContaining({ DeploymentCircuitBreaker: { Enable: true, Rollback: true }, MinimumHealthyPercent: 100 }),
    );
  });

  it('has the plain production environment', () => {
    const env = environmentOf(taskDefinitionFor(template, role).container);
    expect(env).toEqual(
      expect.objectContaining({
        NODE_ENV: 'production',
        PORT: '8080',
        LOG_LEVEL: 'info',
        AWS_REGION: { Ref: 'AWS::Region' },
        CREATE_MISSING_RESOURCES: 'false',
        SQS_QUEUE_URL: { Ref: expect.stringMatching(/^QueuesQueue/) },
        SQS_DLQ_URL: { Ref: expect.stringMatching(/^QueuesDeadLetterQueue/) },
        SQS_TURN_QUEUE_URL: { Ref: expect.stringMatching(/^QueuesTurnTimerQueue/) },
        S3_BUCKET: { Ref: expect.stringMatching(/^StorageMediaBucket/) },
        DYNAMODB_LINES_TABLE: { Ref: expect.stringMatching(/^StorageLinesTable/) },
        DYNAMODB_DEDUPE_TABLE: { Ref: expect.stringMatching(/^StorageDedupeTable/) },
      }),
    );
  });

  it('has the same /healthz container health check as the image (ECS ignores HEALTHCHECK)', () => {
    const task = taskDefinitionFor(template, role);
    const healthCheck = (task.container as { HealthCheck?: { Command: string[]; StartPeriod?: number } }).HealthCheck;
    expect(healthCheck?.Command[0]).toBe('CMD-SHELL');
    expect(healthCheck?.Command[1]).toContain("'/healthz'");
    expect(healthCheck?.Command[1]).toContain('process.env.PORT');
    expect(healthCheck?.StartPeriod).toBeGreaterThan(0);
  });

  it('logs to its own CloudWatch log group with retention', () => {
    const log = taskDefinitionFor(template, role).container.LogConfiguration!;
    expect(log.LogDriver).toBe('awslogs');
    const groupId = (log.Options['awslogs-group'] as { Ref: string }).Ref;
    const group = resourcesOfType(template, 'AWS::Logs::LogGroup')[groupId]!;
    expect(group.Properties.RetentionInDays).toBe(30);
    expect(log.Options['awslogs-stream-prefix']).toBe(role);
  });
});

describe('ingress service', () => {
  it('exposes container port 8080', () => {
    expect(taskDefinitionFor(template, 'ingress').container.PortMappings).toEqual([
      expect.objectContaining({ ContainerPort: 8080, Protocol: 'tcp' }),
    ]);
  });

  it('runs at least 2 tasks and scales on CPU and on ALB requests per target', () => {
    const service = serviceFor(template, 'ingress');
    expect(service.props.DesiredCount).toBe(2);
    const { target, policies } = scalingPolicies(service.id);
    expect(target.MinCapacity).toBe(2);
    expect(target.MaxCapacity).toBeGreaterThan(2);
    const metrics = policies.map(
      (p) => (p.TargetTrackingScalingPolicyConfiguration as { PredefinedMetricSpecification: { PredefinedMetricType: string } })
        .PredefinedMetricSpecification.PredefinedMetricType,
    );
    expect(metrics.sort()).toEqual(['ALBRequestCountPerTarget', 'ECSServiceAverageCPUUtilization']);
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        PredefinedMetricSpecification: Match.objectLike({ PredefinedMetricType: 'ALBRequestCountPerTarget', ResourceLabel: Match.anyValue() }),
      }),
    });
  });
});

describe('worker service', () => {
  it('has no port mapping and is told the queue visibility timeout', () => {
    const task = taskDefinitionFor(template, 'worker');
    expect(task.container.PortMappings ?? []).toEqual([]);
    expect(environmentOf(task.container).SQS_VISIBILITY_TIMEOUT_SECONDS).toEqual({ Ref: 'VisibilityTimeoutSeconds' });
    expect(environmentOf(taskDefinitionFor(template, 'ingress').container).SQS_VISIBILITY_TIMEOUT_SECONDS).toBeUndefined();
  });

  it('is told the Meta app id for the watcher\'s subscription check (WhatsAppAppId, empty by default: skipped)', () => {
    expect(environmentOf(taskDefinitionFor(template, 'worker').container).WHATSAPP_APP_ID).toEqual({ Ref: 'WhatsAppAppId' });
    template.hasParameter('WhatsAppAppId', { Type: 'String', Default: '', AllowedPattern: '^[0-9]*$' });
  });

  it('scales on the queue backlog and on the age of the oldest message', () => {
    const { target, policies } = scalingPolicies(serviceFor(template, 'worker').id);
    expect(target.MinCapacity).toBeGreaterThanOrEqual(1);
    expect(policies.every((p) => p.PolicyType === 'StepScaling')).toBe(true);

    const alarms = Object.values(resourcesOfType(template, 'AWS::CloudWatch::Alarm')).filter((a) =>
      ((a.Properties.AlarmActions as { Ref: string }[]) ?? []).some((ref) => /WorkerServiceTaskCountTarget/.test(ref.Ref ?? '')),
    );
    const scalingMetrics = new Set(alarms.map((a) => `${a.Properties.Namespace}/${a.Properties.MetricName}`));
    expect([...scalingMetrics].sort()).toEqual(['AWS/SQS/ApproximateAgeOfOldestMessage', 'AWS/SQS/ApproximateNumberOfMessagesVisible']);
    for (const alarm of alarms) {
      expect(alarm.Properties.Dimensions).toEqual([
        { Name: 'QueueName', Value: { 'Fn::GetAtt': [expect.stringMatching(/^QueuesQueue/), 'QueueName'] } },
      ]);
    }
    // Scale-in happens only on an empty backlog; the age policy only ever adds tasks.
    const scaleIn = alarms.filter((a) => a.Properties.ComparisonOperator === 'LessThanOrEqualToThreshold');
    expect(scaleIn.map((a) => [a.Properties.MetricName, a.Properties.Threshold])).toEqual([['ApproximateNumberOfMessagesVisible', 0]]);
  });
});

describe('image parameter', () => {
  it('is a CloudFormation parameter, pulled with a role scoped to its repository', () => {
    template.hasParameter('ImageUri', { Type: 'String', AllowedPattern: Match.stringLikeRegexp('dkr') });
    template.hasParameter('ImageRepositoryName', { Type: 'String', Default: 'wa-ingress' });
  });
});
