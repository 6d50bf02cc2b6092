import type { Template } from 'aws-cdk-lib/assertions';
import {
  actionsOf,
  logicalIdOf,
  resourcesOf,
  resourcesOfType,
  roleIdOf,
  statementsOfRole,
  defaultTemplate,
  isInboundDlq,
  isTurnQueue,
  isInboundQueue,
  taskDefinitionFor,
  type Statement,
} from './template';

let template: Template;
let queue: string;
let dlq: string;
let turnQueue: string;
let lines: string;
let dedupe: string;
let bucket: string;
let outQueue: string;
let outDlq: string;
let outTable: string;
let erasures: string;
let contacts: string;

beforeAll(() => {
  template = defaultTemplate();
  queue = logicalIdOf(template, 'AWS::SQS::Queue', isInboundQueue);
  dlq = logicalIdOf(template, 'AWS::SQS::Queue', isInboundDlq);
  turnQueue = logicalIdOf(template, 'AWS::SQS::Queue', isTurnQueue);
  lines = logicalIdOf(template, 'AWS::DynamoDB::Table', (t) => JSON.stringify(t.Properties.KeySchema).includes('lineId'));
  dedupe = logicalIdOf(template, 'AWS::DynamoDB::Table', (_t, id) => id.startsWith('StorageDedupeTable'));
  bucket = logicalIdOf(template, 'AWS::S3::Bucket');
  outQueue = logicalIdOf(template, 'AWS::SQS::Queue', (_q, id) => id.startsWith('OutboundQueue'));
  outDlq = logicalIdOf(template, 'AWS::SQS::Queue', (_q, id) => id.startsWith('OutboundDeadLetterQueue'));
  outTable = logicalIdOf(template, 'AWS::DynamoDB::Table', (_t, id) => id.startsWith('OutboundRecordsTable'));
  erasures = logicalIdOf(template, 'AWS::DynamoDB::Table', (_t, id) => id.startsWith('ErasureErasuresTable'));
  contacts = logicalIdOf(template, 'AWS::DynamoDB::Table', (_t, id) => id.startsWith('StorageContactsTable'));
});

const arn = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });
const objects = (id: string, prefix: string) => ({ 'Fn::Join': ['', [arn(id), `/${prefix}*`]] });
const index = (id: string, name = 'byPhoneNumberId') => ({ 'Fn::Join': ['', [arn(id), `/index/${name}`]] });
const indexes = (id: string) => ({ 'Fn::Join': ['', [arn(id), '/index/*']] });
const lineSecrets = {
  'Fn::Join': [
    '',
    ['arn:', { Ref: 'AWS::Partition' }, ':secretsmanager:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':secret:wa-ingress/lines/*'],
  ],
};

interface Grant {
  effect: string;
  actions: string[];
  resources: string[];
}
const grant = (actions: string[], resources: unknown[], effect = 'Allow'): Grant => ({
  effect,
  actions: [...actions].sort(),
  resources: resources.map((r) => JSON.stringify(r)).sort(),
});
/** Order-free comparison: sorted actions on sorted resources, statements sorted. */
const sorted = (list: Grant[]) => [...list].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
const grants = (statements: Statement[]) => sorted(statements.map((s) => grant(actionsOf(s), resourcesOf(s), s.Effect)));
const taskRoleOf = (role: string) => roleIdOf(taskDefinitionFor(template, role).props.TaskRoleArn);
const executionRoleOf = (role: string) => roleIdOf(taskDefinitionFor(template, role).props.ExecutionRoleArn);

describe('task roles: least privilege', () => {
  it('ingress may enqueue, write claim checks and the archive, resolve lines and read line secrets, nothing else', () => {
    expect(grants(statementsOfRole(template, taskRoleOf('ingress')))).toEqual(
      sorted([
        grant(['sqs:SendMessage', 'sqs:GetQueueAttributes'], [arn(queue)]),
        grant(['s3:PutObject'], [objects(bucket, 'claim-check/')]),
        grant(['s3:PutObject'], [objects(bucket, 'archive/')]),
        grant(['dynamodb:GetItem', 'dynamodb:Query'], [arn(lines), index(lines)]),
        grant(['secretsmanager:GetSecretValue'], [lineSecrets]),
        // Replies: the send API and Bird webhooks put the record and queue the job; the API reads it back.
        grant(['sqs:SendMessage'], [arn(outQueue)]),
        grant(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], [arn(outTable)]),
        // Erasure: the API (and the console) records an erasure and shows it; the DLQ redrive reads the erased marker.
        grant(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], [arn(erasures)]),
        // The contact API: read the state, pause and resume; its `sent` counts query the replies by contact.
        grant(['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:PutItem'], [arn(contacts), indexes(contacts)]),
        // The lines' problems (src/watch) for its gauge: read per line, the lines listed.
        grant(['dynamodb:BatchGetItem'], [arn(dedupe)]),
        grant(['dynamodb:Scan'], [arn(lines)]),
        grant(['dynamodb:Query'], [index(outTable, 'byContact')]),
      ]),
    );
  });

  it('worker may consume, park in the DLQ, claim events, store media and read claim checks and line secrets', () => {
    expect(grants(statementsOfRole(template, taskRoleOf('worker')))).toEqual(
      sorted([
        grant(['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes'], [arn(queue)]),
        grant(['sqs:SendMessage'], [arn(dlq)]),
        // Conversation turns: a cut turn goes back on the inbound queue; timers on their own queue.
        grant(['sqs:SendMessage'], [arn(queue)]),
        grant(['sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:DeleteMessage'], [arn(turnQueue)]),
        grant(['dynamodb:GetItem', 'dynamodb:Query'], [arn(lines), index(lines)]),
        grant(['dynamodb:Query'], [index(lines, 'byWabaId')]),
        grant(['dynamodb:GetItem', 'dynamodb:UpdateItem'], [arn(dedupe)]),
        grant(['s3:ListBucket'], [arn(bucket)]),
        grant(['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'], [objects(bucket, 'media/')]),
        grant(['s3:GetObject'], [objects(bucket, 'claim-check/')]),
        grant(['secretsmanager:GetSecretValue'], [lineSecrets]),
        // Replies: accept a Flow's replies, send them, park what Meta refuses, settle by wamid, sweep the outbox.
        grant(['sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes'], [arn(outQueue)]),
        grant(['sqs:SendMessage'], [arn(outDlq)]),
        grant(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], [arn(outTable)]),
        grant(['dynamodb:Query'], [index(outTable, 'byWamid')]),
        grant(['dynamodb:Query'], [index(outTable, 'byPending')]),
        // Erasure: the runner (pending index, checkpoints) and its steps: media by prefix, the journal by contact
        // (stripped with the UpdateItem above), the turn buffer, the replies by contact, the archive's objects.
        grant(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query'], [arn(erasures), index(erasures, 'byPending')]),
        grant(['s3:DeleteObject'], [objects(bucket, 'media/')]),
        grant(['s3:GetObject', 's3:PutObject', 's3:DeleteObject'], [objects(bucket, 'archive/')]),
        grant(['dynamodb:Query', 'dynamodb:DeleteItem'], [arn(dedupe), index(dedupe, 'byContact')]),
        grant(['dynamodb:Query', 'dynamodb:DeleteItem'], [arn(outTable), index(outTable, 'byContact')]),
        grant(['dynamodb:DeleteItem'], [arn(contacts)]),
        // Conversation state: each event applied with a write conditioned on the version read.
        grant(['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:PutItem'], [arn(contacts), indexes(contacts)]),
        // The Meta watcher: problems read per line, the lines listed, each line's recent arrivals.
        grant(['dynamodb:BatchGetItem'], [arn(dedupe)]),
        grant(['dynamodb:Scan'], [arn(lines)]),
        grant(['dynamodb:Query'], [index(dedupe, 'byLineTime')]),
      ]),
    );
  });

  it('never lets a task scan the dedupe table or touch the gateway secrets directly', () => {
    for (const role of ['ingress', 'worker']) {
      const statements = statementsOfRole(template, taskRoleOf(role));
      // The small lines table may be listed (the watcher, the gauge); the dedupe table never.
      const scans = statements.filter((s) => actionsOf(s).includes('dynamodb:Scan'));
      expect(JSON.stringify(scans.flatMap(resourcesOf))).not.toContain(dedupe);
      const secretRefs = Object.keys(resourcesOfType(template, 'AWS::SecretsManager::Secret'));
      const touched = JSON.stringify(statements.flatMap(resourcesOf));
      for (const id of secretRefs) expect(touched).not.toContain(id);
    }
  });

  it('attaches no managed policies to any role', () => {
    for (const role of Object.values(resourcesOfType(template, 'AWS::IAM::Role'))) {
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      expect(role.Properties.Policies).toBeUndefined();
    }
    template.resourceCountIs('AWS::IAM::ManagedPolicy', 0);
  });
});

describe('execution roles', () => {
  it.each([
    ['ingress', ['WHATSAPP_APP_SECRETS', 'WHATSAPP_VERIFY_TOKEN']],
    ['worker', ['WHATSAPP_ACCESS_TOKEN']],
  ])('%s: pulls from the one repository, writes its own log group, reads only its injected secrets', (role, secretNames) => {
    const statements = statementsOfRole(template, executionRoleOf(role));
    const container = taskDefinitionFor(template, role).container;
    const logGroup = (container.LogConfiguration!.Options['awslogs-group'] as { Ref: string }).Ref;
    const injected = (container.Secrets ?? []).filter((s) => secretNames.includes(s.Name)).map((s) => s.ValueFrom);
    expect(injected).toHaveLength(secretNames.length);
    const repository = {
      'Fn::Join': [
        '',
        ['arn:', { Ref: 'AWS::Partition' }, ':ecr:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':repository/', { Ref: 'ImageRepositoryName' }],
      ],
    };
    expect(grants(statements)).toEqual(
      sorted([
        grant(['ecr:BatchCheckLayerAvailability', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchGetImage'], [repository]),
        grant(['ecr:GetAuthorizationToken'], ['*']),
        grant(['logs:CreateLogStream', 'logs:PutLogEvents'], [arn(logGroup)]),
        ...injected.map((ref) => grant(['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], [ref])),
      ]),
    );
  });
});

/**
 * Where AWS offers no resource-level permission, "*" is the only possible resource. Each exception
 * is listed with why; anything else with "*" fails.
 */
const WILDCARD_RESOURCE_EXCEPTIONS: Record<string, string> = {
  'ecr:GetAuthorizationToken': 'registry login has no resource-level permissions',
};

function allStatements(): { where: string; statement: Statement }[] {
  const found: { where: string; statement: Statement }[] = [];
  const policyTypes: Record<string, string> = {
    'AWS::IAM::Policy': 'PolicyDocument',
    'AWS::IAM::ManagedPolicy': 'PolicyDocument',
    'AWS::S3::BucketPolicy': 'PolicyDocument',
    'AWS::SQS::QueuePolicy': 'PolicyDocument',
    'AWS::SNS::TopicPolicy': 'PolicyDocument',
  };
  for (const [type, key] of Object.entries(policyTypes)) {
    for (const [id, resource] of Object.entries(resourcesOfType(template, type))) {
      for (const statement of (resource.Properties[key] as { Statement: Statement[] }).Statement) found.push({ where: id, statement });
    }
  }
  for (const [id, role] of Object.entries(resourcesOfType(template, 'AWS::IAM::Role'))) {
    for (const statement of (role.Properties.AssumeRolePolicyDocument as { Statement: Statement[] }).Statement) {
      found.push({ where: `${id} (trust)`, statement });
    }
  }
  return found;
}

describe('no wildcards', () => {
  it('no Allow statement grants "*" or "service:*" (or any wildcard action)', () => {
    const offending = allStatements()
      .filter(({ statement }) => statement.Effect === 'Allow')
      .flatMap(({ where, statement }) => actionsOf(statement).filter((a) => a.includes('*')).map((a) => `${where}: ${a}`));
    expect(offending).toEqual([]);
  });

  it('wildcard actions appear only in Deny statements of the TLS-only resource policies', () => {
    const tlsOnly = [{ Bool: { 'aws:SecureTransport': 'false' } }, { NumericLessThan: { 's3:TlsVersion': 1.2 } }];
    const denies = allStatements().filter(({ statement }) => actionsOf(statement).some((a) => a.includes('*')));
    expect(denies.length).toBeGreaterThan(0);
    for (const { statement } of denies) {
      expect(statement.Effect).toBe('Deny');
      expect(tlsOnly).toContainEqual(statement.Condition);
    }
  });

  it('no Allow statement has Resource "*" except the listed AWS requirements', () => {
    const offending = allStatements()
      .filter(({ statement }) => statement.Effect === 'Allow' && resourcesOf(statement).includes('*'))
      .filter(({ statement }) => !actionsOf(statement).every((a) => a in WILDCARD_RESOURCE_EXCEPTIONS))
      .map(({ where, statement }) => `${where}: ${actionsOf(statement).join(',')}`);
    expect(offending).toEqual([]);
  });

  it('every listed exception is still needed (a stale exception hides nothing)', () => {
    const used = new Set(
      allStatements()
        .filter(({ statement }) => resourcesOf(statement).includes('*'))
        .flatMap(({ statement }) => actionsOf(statement)),
    );
    for (const action of Object.keys(WILDCARD_RESOURCE_EXCEPTIONS)) expect(used).toContain(action);
  });
});
