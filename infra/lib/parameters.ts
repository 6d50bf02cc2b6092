import { CfnCondition, CfnParameter, Fn } from 'aws-cdk-lib';
import { Construct } from 'constructs';

/**
 * What the operator chooses at `cdk deploy --parameters ...` time. They are CloudFormation
 * parameters rather than context so one synthesized template serves every account and region,
 * and changing one is a stack update, not a code change.
 */
export class DeployParameters extends Construct {
  readonly imageUri: CfnParameter;
  readonly imageRepositoryName: CfnParameter;
  readonly certificateArn: CfnParameter;
  readonly maxReceiveCount: CfnParameter;
  readonly mediaExpiryDays: CfnParameter;
  readonly archiveRetentionDays: CfnParameter;
  readonly visibilityTimeoutSeconds: CfnParameter;
  readonly alarmEmail: CfnParameter;
  /** The Meta app's id, for the watcher's subscription check (WHATSAPP_APP_ID); empty skips it. */
  readonly whatsAppAppId: CfnParameter;
  /** True when AlarmEmail is not empty: the topic gets an email subscription. */
  readonly hasAlarmEmail: CfnCondition;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    // CfnParameter logical ids are taken from the construct id, so these are the names the
    // operator types; they are created on the stack (not under this construct) to keep them short.
    const stack = scope;

    this.imageUri = new CfnParameter(stack, 'ImageUri', {
      type: 'String',
      description: 'ECR image the operator pushed, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/wa-ingress:1.4.0 (or @sha256:...)',
      allowedPattern: '^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[a-z0-9][a-z0-9._/-]*[:@].+$',
      constraintDescription: 'must be an ECR image URI with a tag or digest',
    });
    // The execution role is granted pull on this one repository; deriving it from the URI with
    // Fn::Split would break on namespaced repositories (team/wa-ingress), so it is asked for.
    this.imageRepositoryName = new CfnParameter(stack, 'ImageRepositoryName', {
      type: 'String',
      default: 'wa-ingress',
      description: 'Name of the ECR repository in ImageUri (same account and region as the stack); the tasks may pull only from it',
      allowedPattern: '^[a-z0-9][a-z0-9._/-]*$',
    });
    this.certificateArn = new CfnParameter(stack, 'CertificateArn', {
      type: 'String',
      description: 'ACM certificate for the HTTPS listener (the host Meta calls back)',
      allowedPattern: '^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$',
      constraintDescription: 'must be an ACM certificate ARN',
    });
    this.maxReceiveCount = new CfnParameter(stack, 'MaxReceiveCount', {
      type: 'Number',
      // Retryable failures (Bird or DynamoDB down) come back with a growing delay capped at 15 min:
      // 20 receives ride out about 2-4 hours of outage before SQS gives up on a message.
      default: 20,
      minValue: 1,
      maxValue: 1000,
      description: 'Receives before SQS moves a message to the DLQ (outages longer than ~2-4 h, crash loops, poison messages)',
    });
    this.mediaExpiryDays = new CfnParameter(stack, 'MediaExpiryDays', {
      type: 'Number',
      default: 30,
      minValue: 1,
      description: 'Days media copied from Meta stays in S3 (media/ prefix); Bird gets presigned URLs to it',
    });
    this.archiveRetentionDays = new CfnParameter(stack, 'ArchiveRetentionDays', {
      type: 'Number',
      default: 30,
      minValue: 1,
      description: 'Days the archive of signed webhook originals stays in S3 (archive/ prefix): how far back `npm run replay` reaches',
    });
    this.visibilityTimeoutSeconds = new CfnParameter(stack, 'VisibilityTimeoutSeconds', {
      type: 'Number',
      // Short on purpose: it bounds how long a crashed worker's messages (and their dedupe leases)
      // stay hidden. Long steps (a 100 MB download, Bird's retries) are covered by the worker's
      // heartbeat, which extends the visibility every third of it while a message is handled.
      default: 30,
      minValue: 20,
      maxValue: 43200,
      description: 'Main queue visibility timeout, also given to the worker (SQS_VISIBILITY_TIMEOUT_SECONDS)',
    });
    this.alarmEmail = new CfnParameter(stack, 'AlarmEmail', {
      type: 'String',
      default: '',
      description: 'Email subscribed to the alarm topic (empty: subscribe something else to the AlarmTopicArn output)',
    });
    this.whatsAppAppId = new CfnParameter(stack, 'WhatsAppAppId', {
      type: 'String',
      default: '',
      allowedPattern: '^[0-9]*$',
      constraintDescription: 'the numeric Meta app id',
      description: "The Meta app's id: the worker's watcher checks that each WABA's subscribed_apps lists it (WHATSAPP_APP_ID; empty: that check is skipped)",
    });
    this.hasAlarmEmail = new CfnCondition(stack, 'HasAlarmEmail', {
      expression: Fn.conditionNot(Fn.conditionEquals(this.alarmEmail.valueAsString, '')),
    });
  }
}
