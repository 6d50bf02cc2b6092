import { Match, type Template } from 'aws-cdk-lib/assertions';
import { CONSOLE_CONTEXT_KEYS, CONSOLE_PORT, consoleOidcFromContext, type ConsoleOidc } from '../lib/console';
import { defaultTemplate, environmentOf, resourcesOfType, roleIdOf, serviceFor, statementsOfRole, synth, taskDefinitionFor } from './template';

const OIDC: ConsoleOidc = {
  issuer: 'https://login.example.com',
  authorizationEndpoint: 'https://login.example.com/authorize',
  tokenEndpoint: 'https://login.example.com/oauth/token',
  userInfoEndpoint: 'https://login.example.com/userinfo',
  clientId: 'wa-console',
  clientSecretName: 'wa-ingress/console/oidc-client-secret',
};

const consoleRules = (template: Template) =>
  Object.values(resourcesOfType(template, 'AWS::ElasticLoadBalancingV2::ListenerRule')).filter((rule) =>
    JSON.stringify(rule.Properties.Conditions).includes('/console'),
  );

describe('console route without OIDC settings (the default)', () => {
  let template: Template;
  beforeAll(() => {
    template = defaultTemplate();
  });

  it('creates no console rule, target group, token or port', () => {
    expect(consoleRules(template)).toEqual([]);
    expect(Object.values(resourcesOfType(template, 'AWS::ElasticLoadBalancingV2::TargetGroup')).map((t) => t.Properties.Port)).toEqual([8080]);
    const ingress = taskDefinitionFor(template, 'ingress').container;
    expect(ingress.PortMappings?.map((p) => p.ContainerPort)).toEqual([8080]);
    expect((ingress.Secrets ?? []).map((s) => s.Name)).not.toContain('CONSOLE_TOKEN');
    expect(JSON.stringify(template.toJSON())).not.toContain('CONSOLE_TOKEN');
  });

  it('still gives the dedupe table the journal indexes', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      GlobalSecondaryIndexes: Match.arrayWith([
        Match.objectLike({ IndexName: 'byLineTime', KeySchema: [{ AttributeName: 'lineId', KeyType: 'HASH' }, { AttributeName: 'receivedAt', KeyType: 'RANGE' }] }),
        Match.objectLike({ IndexName: 'byWamid', KeySchema: [{ AttributeName: 'wamid', KeyType: 'HASH' }, { AttributeName: 'receivedAt', KeyType: 'RANGE' }] }),
        Match.objectLike({ IndexName: 'byContact', KeySchema: [{ AttributeName: 'contactHash', KeyType: 'HASH' }, { AttributeName: 'receivedAt', KeyType: 'RANGE' }] }),
      ]),
    });
  });
});

describe('console route with OIDC settings', () => {
  let template: Template;
  beforeAll(() => {
    template = synth({ consoleOidc: OIDC }).template;
  });

  it('authenticates /console* with OIDC at the ALB, then forwards to the console port', () => {
    const rules = consoleRules(template);
    expect(rules).toHaveLength(1);
    const rule = rules[0]!.Properties;
    expect(rule.Conditions).toEqual([{ Field: 'path-pattern', PathPatternConfig: { Values: ['/console', '/console/*'] } }]);
    const actions = rule.Actions as { Type: string; Order: number; AuthenticateOidcConfig?: Record<string, unknown>; TargetGroupArn?: unknown }[];
    expect(actions.map((a) => a.Type)).toEqual(['authenticate-oidc', 'forward']);
    expect(actions[0]!.AuthenticateOidcConfig).toMatchObject({
      Issuer: OIDC.issuer,
      AuthorizationEndpoint: OIDC.authorizationEndpoint,
      TokenEndpoint: OIDC.tokenEndpoint,
      UserInfoEndpoint: OIDC.userInfoEndpoint,
      ClientId: OIDC.clientId,
      OnUnauthenticatedRequest: 'authenticate',
    });
    // The client secret is a deploy-time dynamic reference, never a literal in the template.
    expect(JSON.stringify(actions[0]!.AuthenticateOidcConfig!.ClientSecret)).toContain(`{{resolve:secretsmanager:${OIDC.clientSecretName}:SecretString:::}}`);
    const consoleGroup = Object.entries(resourcesOfType(template, 'AWS::ElasticLoadBalancingV2::TargetGroup')).find(([, t]) => t.Properties.Port === CONSOLE_PORT);
    expect(consoleGroup).toBeDefined();
    expect(actions[1]!.TargetGroupArn).toEqual({ Ref: consoleGroup![0] });
  });

  it('registers the ingress tasks on the console port, with the token from Secrets Manager', () => {
    const ingress = taskDefinitionFor(template, 'ingress').container;
    expect(ingress.PortMappings?.map((p) => p.ContainerPort)).toEqual([8080, CONSOLE_PORT]);
    expect(environmentOf(ingress).CONSOLE_PORT).toBe(String(CONSOLE_PORT));
    expect((ingress.Secrets ?? []).map((s) => s.Name)).toContain('CONSOLE_TOKEN');
    const balancers = serviceFor(template, 'ingress').props.LoadBalancers as { ContainerPort: number }[];
    expect(balancers.map((b) => b.ContainerPort).sort()).toEqual([8080, CONSOLE_PORT]);
    template.hasResourceProperties('AWS::SecretsManager::Secret', { Name: 'wa-ingress/gateway/CONSOLE_TOKEN', GenerateSecretString: Match.objectLike({ ExcludePunctuation: true }) });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { FromPort: CONSOLE_PORT, ToPort: CONSOLE_PORT, IpProtocol: 'tcp' });
  });

  it('lets the ingress task read the journal and operate the DLQ, and nothing more for the console', () => {
    const roleId = roleIdOf(taskDefinitionFor(template, 'ingress').props.TaskRoleArn);
    const sids = statementsOfRole(template, roleId).map((s) => s.Sid);
    expect(sids).toEqual(expect.arrayContaining(['ReadJournal', 'ListLines', 'OperateDeadLetterQueue', 'ShowMedia']));
    const journal = statementsOfRole(template, roleId).find((s) => s.Sid === 'ReadJournal')!;
    expect(journal.Action).toEqual(['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:UpdateItem']);
    expect(JSON.stringify(statementsOfRole(template, roleId))).not.toContain('dynamodb:DeleteItem');
    // Replies: their line and recipient indexes, and the outbound DLQ.
    expect(sids).toEqual(expect.arrayContaining(['ListReplies', 'OperateOutboundDeadLetterQueue']));
    // A FIFO DLQ's list moves a message that shares its group into one of its own: SendMessage to the DLQ, within its retention.
    for (const sid of ['OperateDeadLetterQueue', 'OperateOutboundDeadLetterQueue']) {
      expect(statementsOfRole(template, roleId).find((s) => s.Sid === sid)!.Action).toEqual(expect.arrayContaining(['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:ReceiveMessage']));
    }
  });

  it('gives the ingress task no console grant without the route', () => {
    const roleId = roleIdOf(taskDefinitionFor(defaultTemplate(), 'ingress').props.TaskRoleArn);
    const sids = statementsOfRole(defaultTemplate(), roleId).map((s) => s.Sid);
    for (const sid of ['ReadJournal', 'ListLines', 'OperateDeadLetterQueue', 'ShowMedia', 'ListReplies', 'OperateOutboundDeadLetterQueue']) expect(sids).not.toContain(sid);
  });
});

describe('console settings from CDK context', () => {
  it('is absent when none is given, complete when all are, and refuses a partial set', () => {
    const context = new Map(Object.entries(CONSOLE_CONTEXT_KEYS).map(([field, key]) => [key, OIDC[field as keyof ConsoleOidc]]));
    expect(consoleOidcFromContext(() => undefined)).toBeUndefined();
    expect(consoleOidcFromContext((key) => context.get(key))).toEqual(OIDC);
    expect(() => consoleOidcFromContext((key) => (key === CONSOLE_CONTEXT_KEYS.issuer ? OIDC.issuer : undefined))).toThrow(/consoleOidcClientId/);
  });
});
