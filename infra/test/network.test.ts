import { Match, type Template } from 'aws-cdk-lib/assertions';
import { onlyResource, resourcesOfType, serviceFor, defaultTemplate } from './template';

let template: Template;
beforeAll(() => {
  template = defaultTemplate();
});

describe('network', () => {
  it('has a VPC with public and private subnets in two AZs', () => {
    template.resourceCountIs('AWS::EC2::VPC', 1);
    const subnets = Object.values(resourcesOfType(template, 'AWS::EC2::Subnet'));
    const publicSubnets = subnets.filter((s) => s.Properties.MapPublicIpOnLaunch === true);
    const privateSubnets = subnets.filter((s) => s.Properties.MapPublicIpOnLaunch === false);
    expect(publicSubnets).toHaveLength(2);
    expect(privateSubnets).toHaveLength(2);
    template.resourceCountIs('AWS::EC2::InternetGateway', 1);
    // One NAT per AZ so egress to Graph and Bird survives an AZ outage.
    template.resourceCountIs('AWS::EC2::NatGateway', 2);
  });

  it('needs no account or region at synth time (no lookups)', () => {
    const azs = JSON.stringify(template.toJSON());
    expect(azs).toContain('Fn::GetAZs');
  });

  it('keeps S3 and DynamoDB traffic on gateway endpoints', () => {
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 2);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway', ServiceName: Match.objectLike({}) });
  });
});

describe('load balancer', () => {
  it('is an internet-facing ALB with an explicit idle timeout that drops invalid headers', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internet-facing',
      Type: 'application',
      LoadBalancerAttributes: Match.arrayWith([
        { Key: 'idle_timeout.timeout_seconds', Value: '60' },
        { Key: 'routing.http.drop_invalid_header_fields.enabled', Value: 'true' },
      ]),
    });
  });

  it('terminates HTTPS with the certificate parameter and forwards only the public paths (webhooks, send API, Bird webhooks)', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 443,
      Protocol: 'HTTPS',
      Certificates: [{ CertificateArn: { Ref: 'CertificateArn' } }],
      SslPolicy: Match.stringLikeRegexp('TLS'),
      DefaultActions: [Match.objectLike({ Type: 'fixed-response', FixedResponseConfig: Match.objectLike({ StatusCode: '404' }) })],
    });
    template.hasParameter('CertificateArn', { Type: 'String', AllowedPattern: Match.stringLikeRegexp('acm') });
    const [, rule] = onlyResource(template, 'AWS::ElasticLoadBalancingV2::ListenerRule');
    expect(rule.Properties.Conditions).toEqual([
      { Field: 'path-pattern', PathPatternConfig: { Values: ['/webhooks/whatsapp', '/webhooks/whatsapp/*', '/v1/*', '/bird/webhooks/*'] } },
    ]);
    expect(rule.Properties.Actions).toEqual([
      expect.objectContaining({ Type: 'forward', TargetGroupArn: { Ref: expect.stringMatching(/IngressTargets/) } }),
    ]);
  });

  it('redirects HTTP to HTTPS permanently', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 80,
      Protocol: 'HTTP',
      DefaultActions: [
        {
          Type: 'redirect',
          RedirectConfig: { Protocol: 'HTTPS', Port: '443', StatusCode: 'HTTP_301' },
        },
      ],
    });
  });

  it('health-checks the ingress tasks on /readyz', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: 8080,
      Protocol: 'HTTP',
      TargetType: 'ip',
      HealthCheckPath: '/readyz',
      Matcher: { HttpCode: '200' },
      TargetGroupAttributes: Match.arrayWith([{ Key: 'deregistration_delay.timeout_seconds', Value: '30' }]),
    });
  });

  it('sends the target group traffic to the ingress container on 8080', () => {
    const ingress = serviceFor(template, 'ingress');
    expect(ingress.props.LoadBalancers).toEqual([
      expect.objectContaining({ ContainerName: 'ingress', ContainerPort: 8080 }),
    ]);
  });

  it('lets only the load balancer reach the ingress tasks', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      IpProtocol: 'tcp',
      FromPort: 8080,
      ToPort: 8080,
      SourceSecurityGroupId: Match.objectLike({ 'Fn::GetAtt': Match.arrayWith([Match.stringLikeRegexp('LoadBalancer')]) }),
    });
    const openToWorld = Object.values(resourcesOfType(template, 'AWS::EC2::SecurityGroup')).flatMap((sg) =>
      ((sg.Properties.SecurityGroupIngress as { CidrIp?: string; FromPort?: number }[]) ?? []).filter((r) => r.CidrIp === '0.0.0.0/0'),
    );
    expect(openToWorld.map((r) => r.FromPort).sort()).toEqual([443, 80]);
  });
});
