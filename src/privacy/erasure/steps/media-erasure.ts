import { DeleteObjectsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { RetryableError } from '../../../errors';
import { contactMediaPrefixOfDigest } from '../../../media/media-object';
import type { ErasureTarget } from '../erasure';
import type { ErasureStep } from './erasure-step';

/** The contact's media objects on the line: one prefix (src/media/media-object.ts), listed and deleted in batches. */
export class MediaErasureStep implements ErasureStep {
  readonly name = 'media';

  constructor(private readonly options: { s3: S3Client; bucket: string }) {}

  async find(target: ErasureTarget, limit: number): Promise<string[]> {
    try {
      const out = await this.options.s3.send(
        new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: contactMediaPrefixOfDigest(target.lineId, target.contactDigest) }),
      );
      // A page of up to 1,000, cut here rather than by MaxKeys: the next call lists afresh what is left,
      // so no continuation token is needed (s3rver fails to make one).
      return (out.Contents ?? []).map((object) => object.Key!).filter(Boolean).slice(0, limit);
    } catch (error) {
      throw new RetryableError('erasure_unavailable', 'Erasure: listing the media failed', { cause: error });
    }
  }

  async remove(_target: ErasureTarget, keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    let out;
    try {
      out = await this.options.s3.send(
        new DeleteObjectsCommand({ Bucket: this.options.bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true } }),
      );
    } catch (error) {
      throw new RetryableError('erasure_unavailable', 'Erasure: deleting the media failed', { cause: error });
    }
    // Deleting a key that is already gone succeeds, so a redone batch reports no error for it.
    if ((out.Errors ?? []).length > 0) throw new RetryableError('erasure_unavailable', `Erasure: S3 refused to delete ${out.Errors!.length} media objects`);
  }
}
