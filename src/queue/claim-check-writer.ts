import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';

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
