import { Duration, SecretValue } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { Construct } from 'constructs';

/** src/config/config.ts CONSOLE_PORT's default: the console's own listener in the ingress task. */
export const CONSOLE_PORT = 8081;
/** The ALB paths forwarded to the console (the page and its API). */
export const CONSOLE_PATHS = ['/console', '/console/*'];

/**
 * The OpenID Connect provider the ALB authenticates operators with before any request reaches the
 * console (which then still asks for its own token). All endpoints are the provider's; the client
 * secret is read from Secrets Manager at deploy time (a dynamic reference: never in the template).
 */
export interface ConsoleOidc {
  issuer: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  userInfoEndpoint: string;
  clientId: string;
  /** Name or ARN of the Secrets Manager secret holding the client secret (a plain string). */
  clientSecretName: string;
}

/** Context keys `cdk deploy -c key=value` sets; all six or none (docs/DEPLOY.md). */
export const CONSOLE_CONTEXT_KEYS: Record<keyof ConsoleOidc, string> = {
  issuer: 'consoleOidcIssuer',
  authorizationEndpoint: 'consoleOidcAuthorizationEndpoint',
  tokenEndpoint: 'consoleOidcTokenEndpoint',
  userInfoEndpoint: 'consoleOidcUserInfoEndpoint',
  clientId: 'consoleOidcClientId',
  clientSecretName: 'consoleOidcClientSecretName',
};

/** The OIDC settings from CDK context, or undefined when none is given; a partial set is an error. */
export function consoleOidcFromContext(get: (key: string) => unknown): ConsoleOidc | undefined {
  const entries = Object.entries(CONSOLE_CONTEXT_KEYS).map(([field, key]) => [field, get(key)] as const);
  const given = entries.filter(([, v]) => typeof v === 'string' && v !== '');
  if (given.length === 0) return undefined;
  if (given.length !== entries.length) {
    const missing = entries.filter(([, v]) => typeof v !== 'string' || v === '').map(([field]) => CONSOLE_CONTEXT_KEYS[field as keyof ConsoleOidc]);
    throw new Error(`The console route needs every OIDC setting; missing: ${missing.join(', ')}`);
  }
  return Object.fromEntries(given) as unknown as ConsoleOidc;
}

export interface ConsoleRouteProps {
  vpc: ec2.IVpc;
  listener: elbv2.ApplicationListener;
  service: ecs.FargateService;
  containerName: string;
  oidc: ConsoleOidc;
}

/**
 * `/console*` on the HTTPS listener → the ingress tasks' console port, behind the ALB's
 * authenticate-oidc. Created only when the OIDC settings are given.
 */
export class ConsoleRoute extends Construct {
  readonly targetGroup: elbv2.ApplicationTargetGroup;

  constructor(scope: Construct, id: string, props: ConsoleRouteProps) {
    super(scope, id);
    this.targetGroup = new elbv2.ApplicationTargetGroup(this, 'ConsoleTargets', {
      vpc: props.vpc,
      port: CONSOLE_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targetType: elbv2.TargetType.IP,
      // The page itself needs no credentials (the API does): a cheap liveness probe of the console.
      healthCheck: { path: '/console/', healthyHttpCodes: '200', interval: Duration.seconds(30) },
      deregistrationDelay: Duration.seconds(10),
      targets: [props.service.loadBalancerTarget({ containerName: props.containerName, containerPort: CONSOLE_PORT })],
    });
    props.listener.addAction('Console', {
      priority: 20,
      conditions: [elbv2.ListenerCondition.pathPatterns(CONSOLE_PATHS)],
      action: elbv2.ListenerAction.authenticateOidc({
        issuer: props.oidc.issuer,
        authorizationEndpoint: props.oidc.authorizationEndpoint,
        tokenEndpoint: props.oidc.tokenEndpoint,
        userInfoEndpoint: props.oidc.userInfoEndpoint,
        clientId: props.oidc.clientId,
        clientSecret: SecretValue.secretsManager(props.oidc.clientSecretName),
        // The live tail is a long-lived stream: unauthenticated requests are sent to log in, never through.
        onUnauthenticatedRequest: elbv2.UnauthenticatedAction.AUTHENTICATE,
        sessionTimeout: Duration.hours(12),
        next: elbv2.ListenerAction.forward([this.targetGroup]),
      }),
    });
  }
}
