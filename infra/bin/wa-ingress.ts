import { App } from 'aws-cdk-lib';
import { WaIngressStack } from '../lib/wa-ingress-stack';

const app = new App();
// Env-agnostic on purpose: the same template deploys to any account and region (Fn::GetAZs,
// AWS::Region), and synth needs no credentials or lookups.
new WaIngressStack(app, app.node.tryGetContext('stackName') ?? 'WaIngress', {
  description: 'wa-ingress: WhatsApp Cloud API webhooks to SQS, delivered to Bird by the worker',
});
app.synth();
