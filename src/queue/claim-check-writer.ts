import { CopyObjectCommand, NoSuchKey, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';

/** The SQS body of a claim-checked payload; the real body sits in S3. The worker resolves it. */
export interface ClaimCheckPointer {
  claimCheck: { bucket: string; key: string; sha256: string; size: number };
}

export const CLAIM_CHECK_PREFIX = 'claim-check/';

/** Derived from the body's hash: a retried POST rewrites the same object, and the bucket's lifecycle rule expires it. */
export function claimCheckKey(sha256Hex: string): string {
  return `${CLAIM_CHECK_PREFIX}${sha256Hex}.json`;
}

export interface ClaimCheckWriter {
  put(body: Buffer, sha256Hex: string): Promise<ClaimCheckPointer>;
}

export class S3ClaimCheckWriter implements ClaimCheckWriter {
  constructor(private readonly options: { s3: S3Client; bucket: string }) {}

  async put(body: Buffer, sha256Hex: string): Promise<ClaimCheckPointer> {
    const key = claimCheckKey(sha256Hex);
    await this.options.s3.send(
      new PutObjectCommand({
        Bucket: this.options.bucket,
        Key: key,
        Body: body,
        ContentType: 'application/json',
        Metadata: { sha256: sha256Hex },
      }),
    );
    return { claimCheck: { bucket: this.options.bucket, key, sha256: sha256Hex, size: body.length } };
  }
}

/**
 * Keeps a claim-check object alive for a redriven pointer. S3's lifecycle rule counts days from an
 * object's creation, and a copy onto itself is a new object: the redriven message gets the whole
 * window again (main-queue retention + DLQ retention + margin; see infra/lib/storage.ts), however
 * late in the DLQ's retention the redrive comes.
 */
export class S3ClaimCheckRefresher {
  constructor(private readonly options: { s3: S3Client; bucket: string }) {}

  /** Throws ClaimCheckGoneError when the object no longer exists (or the pointer is not ours): that pointer can never resolve. */
  async refresh(pointer: ClaimCheckPointer['claimCheck']): Promise<void> {
    const { s3, bucket } = this.options;
    if (pointer.bucket !== bucket || !pointer.key.startsWith(CLAIM_CHECK_PREFIX)) {
      throw new ClaimCheckGoneError(`s3://${pointer.bucket}/${pointer.key} is not a claim check of bucket ${bucket}`);
    }
    try {
      await s3.send(
        new CopyObjectCommand({
          Bucket: bucket,
          Key: pointer.key,
          CopySource: `${bucket}/${pointer.key}`,
          // REPLACE: S3 refuses a copy onto itself that changes nothing.
          MetadataDirective: 'REPLACE',
          ContentType: 'application/json',
          Metadata: { sha256: pointer.sha256, refreshed: new Date().toISOString() },
        }),
      );
    } catch (error) {
      if (error instanceof NoSuchKey || (error as { name?: string }).name === 'NoSuchKey') {
        throw new ClaimCheckGoneError(`s3://${bucket}/${pointer.key} no longer exists`, { cause: error });
      }
      throw error;
    }
  }
}

export class ClaimCheckGoneError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClaimCheckGoneError';
  }
}
