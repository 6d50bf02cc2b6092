import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { OUTBOUND_BY_CONTACT_INDEX } from './outbound';
import { ARCHIVE_PREFIX, JOURNAL_INDEXES, MEDIA_PREFIX } from './storage';

/** Must match src/aws/resources.ts (ERASURES_PENDING_INDEX): the runner finds pending erasures here, never by Scan. */
export const ERASURES_PENDING_INDEX = 'byPending';

export interface ErasureProps {
  ingressTask: ecs.TaskDefinition;
  workerTask: ecs.TaskDefinition;
  dedupeTable: dynamodb.ITable;
  outboundTable: dynamodb.ITable;
  /** The conversation state (src/conversation): the contact's item is deleted. */
  contactsTable: dynamodb.ITable;
  bucket: s3.IBucket;
  /** MEDIA_RETENTION_DAYS: the bucket's lifecycle rule (storage.ts) enforces it; the tasks are told it. */
  mediaRetentionDays: string;
}

/**
 * Erasure of a contact (src/privacy/erasure): the erasures table (the jobs, kept as the audit trail,
 * and the erased markers), what the ingress (the API, the console and its DLQ redrive check) and the
 * worker (the runner and its steps) may do, and their environment.
 */
export class ErasureResources extends Construct {
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: ErasureProps) {
    super(scope, id);
    this.table = new dynamodb.Table(this, 'ErasuresTable', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      // The audit trail of erasures: no TTL, kept when the stack goes.
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: ERASURES_PENDING_INDEX,
      partitionKey: { name: 'pending', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'requestedAt', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });

    for (const task of [props.ingressTask, props.workerTask]) {
      task.defaultContainer!.addEnvironment('DYNAMODB_ERASURES_TABLE', this.table.tableName);
      task.defaultContainer!.addEnvironment('MEDIA_RETENTION_DAYS', props.mediaRetentionDays);
    }
    props.ingressTask.addToTaskRolePolicy(
      new iam.PolicyStatement({
        sid: 'AcceptErasures',
        // src/privacy/erasure/dynamo-erasure-store.ts: the marker (UpdateItem), the record (PutItem), views and the redrive check (GetItem).
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
        resources: [this.table.tableArn],
      }),
    );
    for (const statement of erasureWorkerStatements(this.table, props)) props.workerTask.addToTaskRolePolicy(statement);
  }
}

/** The runner and its steps (src/privacy/erasure/steps): each store's find and remove calls. */
function erasureWorkerStatements(table: dynamodb.ITable, props: ErasureProps): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'RunErasures',
      actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query'],
      resources: [table.tableArn, `${table.tableArn}/index/${ERASURES_PENDING_INDEX}`],
    }),
    new iam.PolicyStatement({
      sid: 'EraseMedia',
      // ListBucket is the worker's already (TellMissingObjects); DeleteObjects is authorised by DeleteObject.
      actions: ['s3:DeleteObject'],
      resources: [props.bucket.arnForObjects(`${MEDIA_PREFIX}*`)],
    }),
    new iam.PolicyStatement({
      sid: 'EraseFromArchive',
      // src/privacy/erasure/steps/archive-erasure.ts: HEAD (GetObject) for each object's contact index, GetObject of the
      // candidates, PutObject to rewrite one without the contact's payloads, DeleteObject when none remain.
      actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
      resources: [props.bucket.arnForObjects(`${ARCHIVE_PREFIX}*`)],
    }),
    new iam.PolicyStatement({
      sid: 'EraseJournalAndTurns',
      // The journal step finds a contact's records by the byContact index and strips them (UpdateItem, the worker's
      // already); the turn step deletes the contact's turn buffer item.
      actions: ['dynamodb:Query', 'dynamodb:DeleteItem'],
      resources: [props.dedupeTable.tableArn, `${props.dedupeTable.tableArn}/index/${JOURNAL_INDEXES.byContact}`],
    }),
    new iam.PolicyStatement({
      sid: 'EraseReplies',
      actions: ['dynamodb:Query', 'dynamodb:DeleteItem'],
      resources: [props.outboundTable.tableArn, `${props.outboundTable.tableArn}/index/${OUTBOUND_BY_CONTACT_INDEX}`],
    }),
    new iam.PolicyStatement({
      // Found through the contact-state indexes (the worker's Query already); the item deleted.
      sid: 'EraseContactState',
      actions: ['dynamodb:DeleteItem'],
      resources: [props.contactsTable.tableArn],
    }),
  ];
}
