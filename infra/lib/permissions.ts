import * as iam from 'aws-cdk-lib/aws-iam';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { ARCHIVE_PREFIX, CLAIM_CHECK_PREFIX, JOURNAL_INDEXES, LINES_BY_PHONE_NUMBER_INDEX, LINES_BY_WABA_INDEX, MEDIA_PREFIX } from './storage';

/**
 * The one place that says what each task role may do. Statements are written out rather than
 * taken from `grant*` helpers, which add actions the app never calls (GetQueueUrl, ConditionCheckItem,
 * DescribeTable, s3:DeleteObject*...). Each list follows the calls in src/ (named below): if the app
 * starts calling a new API, add it here and to test/iam.test.ts.
 */
export interface GatewayResources {
  queue: sqs.IQueue;
  deadLetterQueue: sqs.IQueue;
  turnQueue: sqs.IQueue;
  linesTable: dynamodb.ITable;
  dedupeTable: dynamodb.ITable;
  contactsTable: dynamodb.ITable;
  bucket: s3.IBucket;
  lineSecretsArn: string;
}

/** src/lines/store.ts via the registry: GetItem by lineId, Query on the phone-number index. */
function resolveLines(r: GatewayResources): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'ResolveLines',
    actions: ['dynamodb:GetItem', 'dynamodb:Query'],
    resources: [r.linesTable.tableArn, `${r.linesTable.tableArn}/index/${LINES_BY_PHONE_NUMBER_INDEX}`],
  });
}

/**
 * src/conversation/contact-store.ts: the worker applies each event, the contact API (ingress) reads
 * and pauses. Consistent GetItem of the item, Query on its id indexes, PutItem conditioned on the version.
 */
function keepConversationState(r: GatewayResources): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'KeepConversationState',
    actions: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:PutItem'],
    resources: [r.contactsTable.tableArn, `${r.contactsTable.tableArn}/index/*`],
  });
}

function readLineSecrets(r: GatewayResources): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'ReadLineSecrets',
    actions: ['secretsmanager:GetSecretValue'],
    resources: [r.lineSecretsArn],
  });
}

export function ingressStatements(r: GatewayResources): iam.PolicyStatement[] {
  return [
    ...lineProblemStatements(r),
    new iam.PolicyStatement({
      sid: 'EnqueueWebhooks',
      // SendMessageBatch is authorised by sqs:SendMessage; GetQueueAttributes is the readiness probe.
      actions: ['sqs:SendMessage', 'sqs:GetQueueAttributes'],
      resources: [r.queue.queueArn],
    }),
    new iam.PolicyStatement({
      sid: 'WriteClaimChecks',
      actions: ['s3:PutObject'],
      resources: [r.bucket.arnForObjects(`${CLAIM_CHECK_PREFIX}*`)],
    }),
    new iam.PolicyStatement({
      // src/archive/archive-writer.ts: one PutObject per archive object; never read back by the tasks.
      sid: 'WriteArchive',
      actions: ['s3:PutObject'],
      resources: [r.bucket.arnForObjects(`${ARCHIVE_PREFIX}*`)],
    }),
    resolveLines(r),
    readLineSecrets(r),
    keepConversationState(r),
  ];
}

/**
 * The console (src/console) in the ingress task, when its route exists: journal lookups (GetItem,
 * Query on the journal indexes) and the `redriven` note (UpdateItem) on the dedupe table, the line
 * list (Scan of the small lines table), the DLQ's list/redrive/purge (receive, delete, release, and
 * on a FIFO DLQ moving a message into a group of its own; the redrive's SendMessage to the main queue
 * is the ingress's own grant), and media streamed to the page.
 */
export function consoleStatements(r: GatewayResources): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'ReadJournal',
      actions: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
      resources: [r.dedupeTable.tableArn, `${r.dedupeTable.tableArn}/index/*`],
    }),
    new iam.PolicyStatement({
      sid: 'ListLines',
      actions: ['dynamodb:Scan'],
      resources: [r.linesTable.tableArn],
    }),
    new iam.PolicyStatement({
      sid: 'OperateDeadLetterQueue',
      // SendMessage and GetQueueAttributes: a FIFO DLQ's list moves a message that shares its group into one of its own, within the queue's retention (src/queue/dlq-scanner.ts).
      actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:SendMessage', 'sqs:GetQueueAttributes'],
      resources: [r.deadLetterQueue.queueArn],
    }),
    new iam.PolicyStatement({
      sid: 'ShowMedia',
      actions: ['s3:GetObject'],
      resources: [r.bucket.arnForObjects(`${MEDIA_PREFIX}*`)],
    }),
  ];
}

/**
 * The line problems (src/watch), in every task: its gauge and the console read them (BatchGetItem on
 * the dedupe table's `watch#problems#…` items) for every line (a Scan of the small lines table; the
 * dedupe table is never scanned).
 */
export function lineProblemStatements(r: GatewayResources): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({ sid: 'ReadLineProblems', actions: ['dynamodb:BatchGetItem'], resources: [r.dedupeTable.tableArn] }),
    new iam.PolicyStatement({ sid: 'ListLinesToWatch', actions: ['dynamodb:Scan'], resources: [r.linesTable.tableArn] }),
  ];
}

/** The Meta watcher in the worker: its lease and the problems are UpdateItems (ClaimEvents); the silence rule queries the journal's line index. */
function watchStatements(r: GatewayResources): iam.PolicyStatement[] {
  return [
    ...lineProblemStatements(r),
    new iam.PolicyStatement({ sid: 'ReadLineArrivals', actions: ['dynamodb:Query'], resources: [`${r.dedupeTable.tableArn}/index/${JOURNAL_INDEXES.byLine}`] }),
  ];
}

export function workerStatements(r: GatewayResources): iam.PolicyStatement[] {
  return [
    ...watchStatements(r),
    new iam.PolicyStatement({
      sid: 'ConsumeWebhooks',
      actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes'],
      resources: [r.queue.queueArn],
    }),
    new iam.PolicyStatement({
      sid: 'QueueCutTurns',
      // src/worker/turns/turn-buffer.ts puts a cut conversation turn back on the inbound queue.
      actions: ['sqs:SendMessage'],
      resources: [r.queue.queueArn],
    }),
    new iam.PolicyStatement({
      sid: 'DriveTurnTimers',
      // src/worker/turns/turn-timers.ts arms (delayed SendMessage), receives and deletes its timers.
      actions: ['sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:DeleteMessage'],
      resources: [r.turnQueue.queueArn],
    }),
    new iam.PolicyStatement({
      sid: 'ParkPoisonMessages',
      actions: ['sqs:SendMessage'],
      resources: [r.deadLetterQueue.queueArn],
    }),
    resolveLines(r),
    new iam.PolicyStatement({
      sid: 'FindLinesOfWaba',
      // Account-level events (templates, account updates) name only the WABA.
      actions: ['dynamodb:Query'],
      resources: [`${r.linesTable.tableArn}/index/${LINES_BY_WABA_INDEX}`],
    }),
    new iam.PolicyStatement({
      sid: 'ClaimEvents',
      // src/dedupe/dynamo-dedupe-store.ts claims and completes with conditional updates (an update
      // creates the item) and reads with GetItem; it never puts, deletes or scans.
      actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      resources: [r.dedupeTable.tableArn],
    }),
    new iam.PolicyStatement({
      sid: 'StoreMedia',
      // GetObject also backs the presigned URLs handed to Bird; the multipart actions are
      // lib-storage's for large media.
      actions: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
      resources: [r.bucket.arnForObjects(`${MEDIA_PREFIX}*`)],
    }),
    new iam.PolicyStatement({
      sid: 'TellMissingObjects',
      // Without ListBucket S3 answers 403 instead of 404 for a missing key, and the media store's
      // HeadObject ("already stored?") would turn every new media into a retry. The bucket holds
      // only media/ and claim-check/, both readable by the worker, so listing reveals nothing new.
      actions: ['s3:ListBucket'],
      resources: [r.bucket.bucketArn],
    }),
    new iam.PolicyStatement({
      sid: 'ReadClaimChecks',
      actions: ['s3:GetObject'],
      resources: [r.bucket.arnForObjects(`${CLAIM_CHECK_PREFIX}*`)],
    }),
    readLineSecrets(r),
    keepConversationState(r),
  ];
}
