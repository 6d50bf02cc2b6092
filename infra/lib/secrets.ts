import { ArnFormat, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

/** Per-line secrets (Graph tokens, Bird keys) are created by the operator under this name prefix. */
export const LINE_SECRETS_PREFIX = 'wa-ingress/lines/';
/** Gateway-wide secrets; outside the line prefix so a task role's line grant cannot read them. */
export const GATEWAY_SECRETS_PREFIX = 'wa-ingress/gateway/';

/**
 * The three gateway-wide secrets, injected into the containers by ECS (`secrets`, read with the
 * execution role) so their values never appear in the template or the task definition.
 * CloudFormation creates each with a random placeholder; the operator overwrites it with
 * `aws secretsmanager put-secret-value` (docs/DEPLOY.md).
 */
export class GatewaySecrets extends Construct {
  /** Comma-separated Meta app secrets; several may be valid at once during rotation. */
  readonly appSecrets: secretsmanager.Secret;
  readonly verifyToken: secretsmanager.Secret;
  /** Default Graph token for lines whose record names none. */
  readonly accessToken: secretsmanager.Secret;
  /** The console's own token (CONSOLE_TOKEN), generated; only when the console route exists. */
  readonly consoleToken?: secretsmanager.Secret;

  constructor(scope: Construct, id: string, options: { console?: boolean } = {}) {
    super(scope, id);
    const secret = (cid: string, name: string, description: string) =>
      new secretsmanager.Secret(this, cid, {
        secretName: `${GATEWAY_SECRETS_PREFIX}${name}`,
        description,
        removalPolicy: RemovalPolicy.RETAIN,
      });
    this.appSecrets = secret('AppSecrets', 'WHATSAPP_APP_SECRETS', 'Meta app secret(s), comma-separated, for X-Hub-Signature-256');
    this.verifyToken = secret('VerifyToken', 'WHATSAPP_VERIFY_TOKEN', 'Token Meta echoes in the webhook verification GET');
    this.accessToken = secret('AccessToken', 'WHATSAPP_ACCESS_TOKEN', 'Default Graph API token for media downloads');
    if (options.console) {
      this.consoleToken = new secretsmanager.Secret(this, 'ConsoleToken', {
        secretName: `${GATEWAY_SECRETS_PREFIX}CONSOLE_TOKEN`,
        description: 'The operator console token (after the ALB OIDC login, the console asks for it)',
        removalPolicy: RemovalPolicy.RETAIN,
        generateSecretString: { passwordLength: 40, excludePunctuation: true },
      });
    }
  }
}

/** ARN pattern of every per-line secret; Secrets Manager appends a random suffix, hence the wildcard. */
export function lineSecretsArn(scope: Construct): string {
  return Stack.of(scope).formatArn({
    service: 'secretsmanager',
    resource: 'secret',
    resourceName: `${LINE_SECRETS_PREFIX}*`,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}
