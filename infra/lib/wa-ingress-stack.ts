import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { GatewayAlarms } from './alarms';
import type { ConsoleOidc } from './console';
import { ErasureResources } from './erasure';
import { DeployParameters } from './parameters';
import { WebhookQueues } from './queues';
import { OutboundPipeline } from './outbound';
import { GatewaySecrets, lineSecretsArn } from './secrets';
import { GatewayServices, type ScalingLimits } from './services';
import { GatewayStorage } from './storage';

/** Sizing that rarely changes between deployments; code, not parameters, so tests pin it. */
export interface WaIngressStackProps extends StackProps {
  /** NAT gateways: one per AZ keeps egress (Graph, Bird) alive when an AZ fails. */
  natGateways?: number;
  ingressScaling?: ScalingLimits;
  workerScaling?: ScalingLimits;
  requestsPerTarget?: number;
  backlogSteps?: [number, number, number];
  oldestMessageSteps?: [number, number];
  oldestMessageAlarmSeconds?: number;
  http5xxThreshold?: number;
  signatureRejectedThreshold?: number;
  logRetention?: logs.RetentionDays;
  /** The operator console behind the ALB's OIDC login (bin/ reads it from `-c consoleOidc…` context); absent: no console route. */
  consoleOidc?: ConsoleOidc;
}

export class WaIngressStack extends Stack {
  readonly parameters: DeployParameters;

  constructor(scope: Construct, id: string, props: WaIngressStackProps = {}) {
    super(scope, id, props);
    this.parameters = new DeployParameters(this, 'Parameters');
    const p = this.parameters;

    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: props.natGateways ?? 2,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
      ],
    });
    // S3 and DynamoDB traffic stays off the NAT gateways (cheaper, and no NAT in the data path).
    vpc.addGatewayEndpoint('S3Endpoint', { service: ec2.GatewayVpcEndpointAwsService.S3 });
    vpc.addGatewayEndpoint('DynamoDbEndpoint', { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB });

    const queues = new WebhookQueues(this, 'Queues', {
      visibilityTimeoutSeconds: p.visibilityTimeoutSeconds.valueAsNumber,
      maxReceiveCount: p.maxReceiveCount.valueAsNumber,
    });
    const storage = new GatewayStorage(this, 'Storage', {
      mediaExpiryDays: p.mediaExpiryDays.valueAsNumber,
      archiveRetentionDays: p.archiveRetentionDays.valueAsNumber,
    });
    const secrets = new GatewaySecrets(this, 'Secrets', { console: props.consoleOidc !== undefined });

    const services = new GatewayServices(this, 'Services', {
      vpc,
      imageUri: p.imageUri.valueAsString,
      imageRepositoryName: p.imageRepositoryName.valueAsString,
      certificateArn: p.certificateArn.valueAsString,
      queue: queues.queue,
      deadLetterQueue: queues.deadLetterQueue,
      turnQueue: queues.turnQueue,
      linesTable: storage.linesTable,
      dedupeTable: storage.dedupeTable,
      contactsTable: storage.contactsTable,
      bucket: storage.bucket,
      secrets,
      lineSecretsArn: lineSecretsArn(this),
      visibilityTimeoutSeconds: p.visibilityTimeoutSeconds.valueAsString,
      whatsAppAppId: p.whatsAppAppId.valueAsString,
      logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      ingressScaling: props.ingressScaling ?? { min: 2, max: 10 },
      workerScaling: props.workerScaling ?? { min: 1, max: 10 },
      requestsPerTarget: props.requestsPerTarget ?? 3000,
      backlogSteps: props.backlogSteps ?? [100, 1000, 5000],
      oldestMessageSteps: props.oldestMessageSteps ?? [60, 300],
      consoleOidc: props.consoleOidc,
    });

    const alarms = new GatewayAlarms(this, 'Alarms', {
      queue: queues.queue,
      deadLetterQueue: queues.deadLetterQueue,
      loadBalancer: services.loadBalancer,
      targetGroup: services.targetGroup,
      ingressLogGroup: services.ingressLogGroup,
      workerLogGroup: services.workerLogGroup,
      alarmEmail: p.alarmEmail.valueAsString,
      hasAlarmEmail: p.hasAlarmEmail,
      oldestMessageAlarmSeconds: props.oldestMessageAlarmSeconds ?? 600,
      http5xxThreshold: props.http5xxThreshold ?? 10,
      signatureRejectedThreshold: props.signatureRejectedThreshold ?? 10,
    });

    const outbound = new OutboundPipeline(this, 'Outbound', {
      visibilityTimeoutSeconds: p.visibilityTimeoutSeconds.valueAsNumber,
      maxReceiveCount: p.maxReceiveCount.valueAsNumber,
      ingressTask: services.ingressService.taskDefinition,
      workerTask: services.workerService.taskDefinition,
      workerLogGroup: services.workerLogGroup,
      topic: alarms.topic,
      console: props.consoleOidc !== undefined,
    });

    const erasure = new ErasureResources(this, 'Erasure', {
      ingressTask: services.ingressService.taskDefinition,
      workerTask: services.workerService.taskDefinition,
      dedupeTable: storage.dedupeTable,
      outboundTable: outbound.table,
      contactsTable: storage.contactsTable,
      bucket: storage.bucket,
      mediaRetentionDays: p.mediaExpiryDays.valueAsString,
    });

    const output = (id: string, value: string, description: string) => new CfnOutput(this, id, { value, description });
    output('LoadBalancerDnsName', services.loadBalancer.loadBalancerDnsName, 'Point the certificate host (CNAME or alias) here');
    output('QueueUrl', queues.queue.queueUrl, 'SQS_QUEUE_URL for the dlq tool');
    output('DeadLetterQueueUrl', queues.deadLetterQueue.queueUrl, 'SQS_DLQ_URL for the dlq tool');
    output('LinesTableName', storage.linesTable.tableName, 'DYNAMODB_LINES_TABLE for the lines CLI');
    output('DedupeTableName', storage.dedupeTable.tableName, 'DYNAMODB_DEDUPE_TABLE');
    output('ContactsTableName', storage.contactsTable.tableName, 'DYNAMODB_CONTACTS_TABLE');
    output('MediaBucketName', storage.bucket.bucketName, 'S3_BUCKET');
    output('OutboundQueueUrl', outbound.queue.queueUrl, 'SQS_OUTBOUND_QUEUE_URL for the outbound CLI');
    output('OutboundDeadLetterQueueUrl', outbound.deadLetterQueue.queueUrl, 'SQS_OUTBOUND_DLQ_URL for the dlq tool');
    output('OutboundTableName', outbound.table.tableName, 'DYNAMODB_OUTBOUND_TABLE for the outbound CLI');
    output('ErasuresTableName', erasure.table.tableName, 'DYNAMODB_ERASURES_TABLE for the dlq tool (its redrive check)');
    output('AlarmTopicArn', alarms.topic.topicArn, 'Subscribe pagers or chat here');
    output('AppSecretsArn', secrets.appSecrets.secretArn, 'put-secret-value: comma-separated Meta app secrets');
    output('VerifyTokenArn', secrets.verifyToken.secretArn, 'put-secret-value: the webhook verify token');
    output('AccessTokenArn', secrets.accessToken.secretArn, 'put-secret-value: the default Graph token');
    if (secrets.consoleToken) {
      output('ConsoleTokenArn', secrets.consoleToken.secretArn, 'get-secret-value: the console token (generated)');
    }
  }
}
