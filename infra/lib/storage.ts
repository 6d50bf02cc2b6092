import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** Must match src/aws/resources.ts (LINES_BY_PHONE_NUMBER_INDEX), which the app queries by name. */
export const LINES_BY_PHONE_NUMBER_INDEX = 'byPhoneNumberId';
/** Must match src/aws/resources.ts (LINES_BY_WABA_INDEX): account-level events find their lines by WABA. */
export const LINES_BY_WABA_INDEX = 'byWabaId';
/** Main-queue retention (14) + DLQ retention from parking (14) + margin (2): see the lifecycle rule. */
export const CLAIM_CHECK_EXPIRY_DAYS = 14 + 14 + 2;

/** Object key prefixes the app writes under; IAM and lifecycle rules are scoped to them. */
export const MEDIA_PREFIX = 'media/';
/** Must match src/aws/resources.ts (JOURNAL_INDEXES, JOURNAL_PROJECTED): the console's lookups over the dedupe records. */
export const JOURNAL_INDEXES = { byLine: 'byLineTime', byWamid: 'byWamid', byContact: 'byContact' } as const;
export const JOURNAL_PROJECTED = ['status', 'kind', 'type', 'updatedAt', 'contact', 'wamid', 'lineId', 'parkReason', 'retries', 'duplicates'];
export const CLAIM_CHECK_PREFIX = 'claim-check/';
/** Must match src/archive/archive-record.ts (ARCHIVE_PREFIX): the ingress's archive of signed webhook originals. */
export const ARCHIVE_PREFIX = 'archive/';
/** Must match src/aws/resources.ts (CONTACTS_BY_*_INDEX): the conversation state found by wa_id, BSUID or group. */
export const CONTACT_INDEXES = { byWaId: 'waIdKey', byUserId: 'userIdKey', byGroup: 'groupKey' } as const;

export interface GatewayStorageProps {
  mediaExpiryDays: number;
  /** ARCHIVE_RETENTION_DAYS: how long `npm run replay` can reach back. */
  archiveRetentionDays: number;
}

/** Lines registry, dedupe claims and the media / claim-check bucket. */
export class GatewayStorage extends Construct {
  readonly linesTable: dynamodb.Table;
  readonly dedupeTable: dynamodb.Table;
  readonly contactsTable: dynamodb.Table;
  readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: GatewayStorageProps) {
    super(scope, id);

    this.linesTable = new dynamodb.Table(this, 'LinesTable', {
      partitionKey: { name: 'lineId', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      // The registry is operator-entered configuration with no other copy.
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.linesTable.addGlobalSecondaryIndex({
      indexName: LINES_BY_PHONE_NUMBER_INDEX,
      partitionKey: { name: 'phoneNumberId', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
    this.linesTable.addGlobalSecondaryIndex({
      indexName: LINES_BY_WABA_INDEX,
      partitionKey: { name: 'wabaId', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });

    // No point-in-time recovery: claims live a little over a week and a restore would land in a
    // new table the running tasks do not use.
    this.dedupeTable = new dynamodb.Table(this, 'DedupeTable', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiresAt',
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // The journal (the console's event log) rides on these records: sparse indexes by line and
    // time, by wamid and by contact hash, so no lookup scans.
    for (const [indexName, hash] of [
      [JOURNAL_INDEXES.byLine, 'lineId'],
      [JOURNAL_INDEXES.byWamid, 'wamid'],
      [JOURNAL_INDEXES.byContact, 'contactHash'],
    ] as const) {
      this.dedupeTable.addGlobalSecondaryIndex({
        indexName,
        partitionKey: { name: hash, type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'receivedAt', type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.INCLUDE,
        nonKeyAttributes: JOURNAL_PROJECTED,
      });
    }

    // Conversation state (src/conversation): one item per line and contact, written by the worker
    // (and the contact API's pause). Point-in-time recovery: pauses are operator input with no other copy.
    this.contactsTable = new dynamodb.Table(this, 'ContactsTable', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    for (const [indexName, hash] of Object.entries(CONTACT_INDEXES)) {
      this.contactsTable.addGlobalSecondaryIndex({ indexName, partitionKey: { name: hash, type: dynamodb.AttributeType.STRING }, projectionType: dynamodb.ProjectionType.KEYS_ONLY });
    }

    this.bucket = new s3.Bucket(this, 'MediaBucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        { id: 'expire-media', prefix: MEDIA_PREFIX, expiration: Duration.days(props.mediaExpiryDays) },
        // A claim-checked body must outlive every copy of its pointer: the main-queue message (up to
        // 14 days), then a parked copy, which the parker sends anew, so the DLQ's 14 days start at
        // parking (≤ 28 days after the object was written), plus 2 days' margin. A redrive copies the
        // object onto itself first (src/queue/claim-check-writer.ts), which starts a new window.
        { id: 'expire-claim-checks', prefix: CLAIM_CHECK_PREFIX, expiration: Duration.days(CLAIM_CHECK_EXPIRY_DAYS) },
        // The archive of signed originals, kept for replay (the embedded default sweeps it itself).
        { id: 'expire-archive', prefix: ARCHIVE_PREFIX, expiration: Duration.days(props.archiveRetentionDays) },
        // lib-storage multipart uploads of large media that a killed task never completed.
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
  }
}
