import { App } from 'aws-cdk-lib';
import { consoleOidcFromContext } from '../lib/console';
import { WaIngressStack } from '../lib/wa-ingress-stack';

const app = new App();
// Env-agnostic on purpose: the same template deploys to any account and region (Fn::GetAZs,
// AWS::Region), and synth needs no credentials or lookups.
new WaIngressStack(app, app.node.tryGetContext('stackName') ?? 'WaIngress', {
  description: 'wa-ingress: WhatsApp Cloud API webhooks to SQS, delivered to Bird by the worker',
  // The console route exists only with an OIDC provider (docs/DEPLOY.md, "The console").
  consoleOidc: consoleOidcFromContext((key) => app.node.tryGetContext(key)),
});
app.synth();
