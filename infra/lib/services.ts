import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { CONSOLE_PORT, ConsoleRoute, type ConsoleOidc } from './console';
import { consoleStatements, ingressStatements, workerStatements, type GatewayResources } from './permissions';
import type { GatewaySecrets } from './secrets';

export const CONTAINER_PORT = 8080;

/**
 * The app's drain bound (SHUTDOWN_TIMEOUT_MS) and ECS's stopTimeout, from one place: ECS sends
 * SIGKILL stopTimeout after SIGTERM, so the drain (one 20 s long poll returning, handlers aborted
 * and their messages handed back, deletes flushed) must end first, with room for the exit.
 */
export const SHUTDOWN_TIMEOUT_MS = 25_000;
export const STOP_TIMEOUT_SECONDS = SHUTDOWN_TIMEOUT_MS / 1000 + 5;
/**
 * The image's HEALTHCHECK, restated: ECS ignores the Dockerfile's. Both roles serve /healthz on
 * PORT (the worker from a small health server), so a wedged event loop gets the task replaced.
 */
export const CONTAINER_HEALTH_COMMAND =
  "node -e \"fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))\"";
/**
 * The public paths, the only ones the load balancer forwards (metrics and probes stay private):
 * Meta's callbacks, the send API, and Bird's webhook subscriptions. An ALB condition takes 5 at most.
 */
export const WEBHOOK_PATHS = ['/webhooks/whatsapp', '/webhooks/whatsapp/*', '/v1/*', '/bird/webhooks/*'];

export interface ScalingLimits {
  min: number;
  max: number;
}

export interface GatewayServicesProps {
  vpc: ec2.IVpc;
  imageUri: string;
  imageRepositoryName: string;
  certificateArn: string;
  queue: sqs.Queue;
  deadLetterQueue: sqs.Queue;
  turnQueue: sqs.Queue;
  linesTable: dynamodb.Table;
  dedupeTable: dynamodb.Table;
  contactsTable: dynamodb.Table;
  bucket: s3.Bucket;
  secrets: GatewaySecrets;
  lineSecretsArn: string;
  /** Given to the worker so its heartbeat and the queue agree. */
  visibilityTimeoutSeconds: string;
  /** WHATSAPP_APP_ID for the worker's Meta watcher (empty: its subscription check is skipped). */
  whatsAppAppId: string;
  logRetention: logs.RetentionDays;
  ingressScaling: ScalingLimits;
  workerScaling: ScalingLimits;
  /** ALB requests per ingress task per minute before another task is added. */
  requestsPerTarget: number;
  /** Visible messages at which the worker adds 1, 2, 4 tasks. */
  backlogSteps: [number, number, number];
  /** Age in seconds of the oldest message at which the worker adds 1, then 2 more tasks. */
  oldestMessageSteps: [number, number];
  /** The console behind the ALB's OIDC login; without it no console route (and no console) exists. */
  consoleOidc?: ConsoleOidc;
}

/** The ALB, the ECS cluster and the two services that run the one image in two roles. */
export class GatewayServices extends Construct {
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  readonly ingressService: ecs.FargateService;
  readonly workerService: ecs.FargateService;
  readonly ingressLogGroup: logs.LogGroup;
  readonly workerLogGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: GatewayServicesProps) {
    super(scope, id);
    const stack = Stack.of(this);

    const cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: props.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });

    const image = ecs.ContainerImage.fromRegistry(props.imageUri);
    const resources: GatewayResources = {
      queue: props.queue,
      deadLetterQueue: props.deadLetterQueue,
      turnQueue: props.turnQueue,
      linesTable: props.linesTable,
      dedupeTable: props.dedupeTable,
      contactsTable: props.contactsTable,
      bucket: props.bucket,
      lineSecretsArn: props.lineSecretsArn,
    };
    const commonEnvironment: Record<string, string> = {
      NODE_ENV: 'production',
      PORT: String(CONTAINER_PORT),
      LOG_LEVEL: 'info',
      AWS_REGION: stack.region,
      SQS_QUEUE_URL: props.queue.queueUrl,
      SQS_DLQ_URL: props.deadLetterQueue.queueUrl,
      SQS_TURN_QUEUE_URL: props.turnQueue.queueUrl,
      S3_BUCKET: props.bucket.bucketName,
      DYNAMODB_LINES_TABLE: props.linesTable.tableName,
      DYNAMODB_DEDUPE_TABLE: props.dedupeTable.tableName,
      DYNAMODB_CONTACTS_TABLE: props.contactsTable.tableName,
      // The stack owns every resource; a typo in a name must fail loudly, not create a stray table.
      CREATE_MISSING_RESOURCES: 'false',
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
    };
    // Each role gets only what it uses: the ingress checks signatures and the verify token, the
    // worker calls Graph with the access token (the app's start checks are per role).
    const signatureSecrets = {
      WHATSAPP_APP_SECRETS: ecs.Secret.fromSecretsManager(props.secrets.appSecrets),
      WHATSAPP_VERIFY_TOKEN: ecs.Secret.fromSecretsManager(props.secrets.verifyToken),
    };

    // The console runs in the ingress tasks, on its own port, only when its route is configured.
    const consoleToken = props.consoleOidc && props.secrets.consoleToken;
    const ingress = this.taskDefinition('Ingress', {
      role: 'ingress',
      image,
      imageRepositoryName: props.imageRepositoryName,
      environment: consoleToken ? { ...commonEnvironment, CONSOLE_PORT: String(CONSOLE_PORT) } : commonEnvironment,
      secrets: consoleToken ? { ...signatureSecrets, CONSOLE_TOKEN: ecs.Secret.fromSecretsManager(consoleToken) } : signatureSecrets,
      statements: [...ingressStatements(resources), ...(consoleToken ? consoleStatements(resources) : [])],
      logRetention: props.logRetention,
      portMapping: true,
      extraPorts: consoleToken ? [CONSOLE_PORT] : [],
    });
    this.ingressLogGroup = ingress.logGroup;

    const worker = this.taskDefinition('Worker', {
      role: 'worker',
      image,
      imageRepositoryName: props.imageRepositoryName,
      environment: { ...commonEnvironment, SQS_VISIBILITY_TIMEOUT_SECONDS: props.visibilityTimeoutSeconds, WHATSAPP_APP_ID: props.whatsAppAppId },
      secrets: { WHATSAPP_ACCESS_TOKEN: ecs.Secret.fromSecretsManager(props.secrets.accessToken) },
      statements: workerStatements(resources),
      logRetention: props.logRetention,
      portMapping: false,
    });
    this.workerLogGroup = worker.logGroup;

    // --- Load balancer ------------------------------------------------------------------------
    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'LoadBalancer', {
      vpc: props.vpc,
      internetFacing: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      // Longer than the slowest webhook (3 MB body, SQS answer within SQS_SEND_TIMEOUT_MS);
      // the app's keep-alive timeout (65 s, src/ingress/server.ts) must exceed it or the ALB
      // reuses sockets the app already closed (sporadic 502s).
      idleTimeout: Duration.seconds(60),
      dropInvalidHeaderFields: true,
    });

    this.targetGroup = new elbv2.ApplicationTargetGroup(this, 'IngressTargets', {
      vpc: props.vpc,
      port: CONTAINER_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targetType: elbv2.TargetType.IP,
      // Readiness, not liveness: a task that cannot reach SQS must stop receiving webhooks.
      healthCheck: {
        path: '/readyz',
        healthyHttpCodes: '200',
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 3,
      },
      // Requests finish in milliseconds once SQS answers; ECS waits this long before SIGTERM.
      deregistrationDelay: Duration.seconds(30),
    });

    const https = this.loadBalancer.addListener('Https', {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [elbv2.ListenerCertificate.fromArn(props.certificateArn)],
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      defaultAction: elbv2.ListenerAction.fixedResponse(404, { contentType: 'text/plain', messageBody: 'Not Found' }),
    });
    https.addAction('Webhooks', {
      priority: 10,
      conditions: [elbv2.ListenerCondition.pathPatterns(WEBHOOK_PATHS)],
      action: elbv2.ListenerAction.forward([this.targetGroup]),
    });
    this.loadBalancer.addListener('Http', {
      port: 80,
      protocol: elbv2.ApplicationProtocol.HTTP,
      defaultAction: elbv2.ListenerAction.redirect({ protocol: 'HTTPS', port: '443', permanent: true }),
    });

    // --- Services -----------------------------------------------------------------------------
    const privateSubnets = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };

    this.ingressService = new ecs.FargateService(this, 'IngressService', {
      cluster,
      taskDefinition: ingress.taskDefinition,
      desiredCount: props.ingressScaling.min,
      vpcSubnets: privateSubnets,
      assignPublicIp: false,
      // Never fewer healthy tasks than the minimum during a deploy: Meta's retries are slow.
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { rollback: true },
      healthCheckGracePeriod: Duration.seconds(30),
    });
    this.ingressService.attachToApplicationTargetGroup(this.targetGroup);
    if (props.consoleOidc && consoleToken) {
      new ConsoleRoute(this, 'Console', { vpc: props.vpc, listener: https, service: this.ingressService, containerName: 'ingress', oidc: props.consoleOidc });
    }
    const ingressScaling = this.ingressService.autoScaleTaskCount({
      minCapacity: props.ingressScaling.min,
      maxCapacity: props.ingressScaling.max,
    });
    ingressScaling.scaleOnCpuUtilization('Cpu', {
      targetUtilizationPercent: 60,
      scaleOutCooldown: Duration.seconds(60),
      scaleInCooldown: Duration.seconds(300),
    });
    ingressScaling.scaleOnRequestCount('Requests', {
      targetGroup: this.targetGroup,
      requestsPerTarget: props.requestsPerTarget,
      scaleOutCooldown: Duration.seconds(60),
      scaleInCooldown: Duration.seconds(300),
    });

    this.workerService = new ecs.FargateService(this, 'WorkerService', {
      cluster,
      taskDefinition: worker.taskDefinition,
      desiredCount: props.workerScaling.min,
      vpcSubnets: privateSubnets,
      assignPublicIp: false,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { rollback: true },
    });
    const workerScaling = this.workerService.autoScaleTaskCount({
      minCapacity: props.workerScaling.min,
      maxCapacity: props.workerScaling.max,
    });
    const [b1, b2, b3] = props.backlogSteps;
    workerScaling.scaleOnMetric('Backlog', {
      metric: props.queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }),
      // Scale in only when the queue is empty; scaling out is by step so a burst is met fast.
      scalingSteps: [
        { upper: 0, change: -1 },
        { lower: b1, change: +1 },
        { lower: b2, change: +2 },
        { lower: b3, change: +4 },
      ],
      adjustmentType: appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
      evaluationPeriods: 2,
      cooldown: Duration.seconds(120),
    });
    const [a1, a2] = props.oldestMessageSteps;
    workerScaling.scaleOnMetric('OldestMessage', {
      // A small backlog that nobody drains (workers stuck on a slow Bird) still shows here.
      metric: props.queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: 'Maximum' }),
      scalingSteps: [
        { upper: a1, change: 0 },
        { lower: a1, change: +1 },
        { lower: a2, change: +3 },
      ],
      adjustmentType: appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
      evaluationPeriods: 2,
      cooldown: Duration.seconds(120),
    });
  }

  private taskDefinition(
    id: string,
    opts: {
      role: 'ingress' | 'worker';
      image: ecs.ContainerImage;
      imageRepositoryName: string;
      environment: Record<string, string>;
      secrets: Record<string, ecs.Secret>;
      statements: iam.PolicyStatement[];
      logRetention: logs.RetentionDays;
      portMapping: boolean;
      extraPorts?: number[];
    },
  ): { taskDefinition: ecs.FargateTaskDefinition; logGroup: logs.LogGroup } {
    const logGroup = new logs.LogGroup(this, `${id}Logs`, {
      retention: opts.logRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const taskDefinition = new ecs.FargateTaskDefinition(this, `${id}Task`, {
      cpu: 512,
      memoryLimitMiB: 1024,
      runtimePlatform: {
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
      },
    });
    for (const statement of opts.statements) taskDefinition.addToTaskRolePolicy(statement);
    grantImagePull(taskDefinition.obtainExecutionRole(), opts.imageRepositoryName);

    taskDefinition.addContainer(opts.role, {
      image: opts.image,
      command: [opts.role],
      environment: opts.environment,
      secrets: opts.secrets,
      essential: true,
      portMappings: opts.portMapping
        ? [CONTAINER_PORT, ...(opts.extraPorts ?? [])].map((containerPort) => ({ containerPort, protocol: ecs.Protocol.TCP }))
        : undefined,
      logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: opts.role }),
      healthCheck: {
        command: ['CMD-SHELL', CONTAINER_HEALTH_COMMAND],
        interval: Duration.seconds(30),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(20),
      },
      // SIGTERM drains within SHUTDOWN_TIMEOUT_MS; SIGKILL only after that and a margin.
      stopTimeout: Duration.seconds(STOP_TIMEOUT_SECONDS),
    });
    return { taskDefinition, logGroup };
  }
}

/**
 * ContainerImage.fromRegistry grants nothing, and the image URI is a parameter, so the pull
 * permission is scoped to the repository named by ImageRepositoryName.
 */
function grantImagePull(executionRole: iam.IRole, repositoryName: string): void {
  const stack = Stack.of(executionRole);
  executionRole.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: 'PullImage',
      actions: ['ecr:BatchCheckLayerAvailability', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchGetImage'],
      resources: [stack.formatArn({ service: 'ecr', resource: 'repository', resourceName: repositoryName })],
    }),
  );
  executionRole.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: 'EcrLogin',
      // GetAuthorizationToken has no resource-level permissions: AWS requires "*".
      actions: ['ecr:GetAuthorizationToken'],
      resources: ['*'],
    }),
  );
}
