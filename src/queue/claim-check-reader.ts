import { createHash } from 'node:crypto';
import { GetObjectCommand, NoSuchKey, type S3Client } from '@aws-sdk/client-s3';
import { PermanentError, RetryableError } from '../errors';
import { parseClaimCheckPointer, type ClaimCheckPointer } from './message';

export interface ClaimCheckReaderOptions {
  s3: S3Client;
  /** The ingress's bucket: a pointer to any other bucket is refused. */
  bucket: string;
}

/**
 * Resolves the ingress's claim-check pointers to the real body.
 * Nobody deletes the S3 object after use: the bucket's lifecycle rule expires `claim-check/` after
 * 30 days (main-queue retention 14 + DLQ retention from parking 14 + 2), and a DLQ redrive copies
 * the object onto itself first, so a parked or redriven pointer still resolves.
 */
export class ClaimCheckReader {
  private readonly s3: S3Client;
  private readonly bucket: string;

  constructor(options: ClaimCheckReaderOptions) {
    this.s3 = options.s3;
    this.bucket = options.bucket;
  }

  /** `attribute` is the message's `claimCheck` attribute (`s3://bucket/key`); `body` the pointer JSON. */
  async resolve(attribute: string, body: string): Promise<Buffer> {
    const pointer = parseClaimCheckPointer(body);
    if (!pointer) {
      throw new PermanentError('claim_check_invalid', 'Message has a claimCheck attribute but its body is not a claim-check pointer');
    }
    if (attribute !== `s3://${pointer.bucket}/${pointer.key}`) {
      throw new PermanentError('claim_check_invalid', `claimCheck attribute ${attribute} does not match the pointer in the body`);
    }
    return this.read(pointer);
  }

  async read(pointer: ClaimCheckPointer): Promise<Buffer> {
    if (pointer.bucket !== this.bucket) {
      throw new PermanentError('claim_check_foreign_bucket', `Claim check points to bucket ${pointer.bucket}, expected ${this.bucket}`);
    }
    let bytes: Uint8Array;
    try {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: pointer.bucket, Key: pointer.key }));
      if (object.ContentLength !== undefined && object.ContentLength !== pointer.size) {
        object.Body?.transformToWebStream().cancel().catch(() => undefined);
        throw new PermanentError(
          'claim_check_size_mismatch',
          `s3://${pointer.bucket}/${pointer.key} is ${object.ContentLength} bytes, the pointer says ${pointer.size}`,
        );
      }
      if (!object.Body) throw new RetryableError('claim_check_unavailable', `s3://${pointer.bucket}/${pointer.key} returned no body`);
      bytes = await object.Body.transformToByteArray();
    } catch (error) {
      if (error instanceof PermanentError || error instanceof RetryableError) throw error;
      if (error instanceof NoSuchKey) {
        throw new PermanentError(
          'claim_check_missing',
          `s3://${pointer.bucket}/${pointer.key} does not exist (expired by the lifecycle rule, or deleted)`,
          { cause: error },
        );
      }
      throw new RetryableError('claim_check_unavailable', `Could not read s3://${pointer.bucket}/${pointer.key}`, { cause: error });
    }
    const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const sha256 = createHash('sha256').update(body).digest('hex');
    if (sha256 !== pointer.sha256.toLowerCase()) {
      throw new PermanentError(
        'claim_check_sha256_mismatch',
        `s3://${pointer.bucket}/${pointer.key} has sha256 ${sha256}, the pointer says ${pointer.sha256}`,
      );
    }
    return body;
  }
}
