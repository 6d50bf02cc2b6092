import type { ArchiveObjects } from '../../../archive/archive-objects';
import { archiveObjectsHolding, removeContactFromObject } from '../../../archive/archive-erasure';
import { RetryableError } from '../../../errors';
import type { ErasureTarget } from '../erasure';
import type { ErasureStep } from './erasure-step';

/**
 * The signed originals (src/archive): each archive object holding a payload that names the contact
 * on the line's number is rewritten without those payloads, or deleted when none remain. Counted per
 * object. The archive keeps only 30 days (ARCHIVE_RETENTION_DAYS), so the whole of it is searched.
 */
export class ArchiveErasureStep implements ErasureStep {
  readonly name = 'archive';

  constructor(private readonly objects: ArchiveObjects) {}

  async find(target: ErasureTarget, limit: number): Promise<string[]> {
    try {
      return await archiveObjectsHolding(this.objects, this.request(target), limit);
    } catch (error) {
      throw new RetryableError('erasure_unavailable', 'Erasure: reading the archive failed', { cause: error });
    }
  }

  async remove(target: ErasureTarget, keys: string[]): Promise<void> {
    for (const key of keys) {
      try {
        await removeContactFromObject(this.objects, key, this.request(target));
      } catch (error) {
        // A redone batch may name an object a first pass already deleted: nothing is left to remove there.
        if (error instanceof Error && (error.name === 'NoSuchKey' || error.name === 'NotFound')) continue;
        throw new RetryableError('erasure_unavailable', 'Erasure: rewriting an archive object failed', { cause: error });
      }
    }
  }

  private request(target: ErasureTarget) {
    return { phoneNumberId: target.phoneNumberId, contactDigest: target.contactDigest };
  }
}
