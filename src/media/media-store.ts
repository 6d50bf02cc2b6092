import type { MediaRef } from '../meta/event';

export interface StoredMedia {
  s3Key: string;
  /** Lowercase hex of the stored bytes, also on the object as `x-amz-meta-sha256`. */
  sha256: string;
  size: number;
  mimeType: string;
}

export interface StoreMediaInput {
  lineId: string;
  /** The line's resolved access token (the literal, not a secret reference). */
  accessToken: string;
  wamid: string;
  /** The sender (wa_id or BSUID): its digest groups the person's files under one prefix, for erasure. */
  contact: string | undefined;
  media: MediaRef;
  receivedAt: Date;
}

/**
 * Copies a message's media from Meta into durable storage, checked. Failures are RetryableError or
 * PermanentError with a stable `reason`: media_token_rejected, media_expired, media_too_large,
 * media_host_not_allowed, media_sha256_missing, media_rejected (permanent); media_unavailable,
 * media_rate_limited, media_sha256_mismatch, media_store_failed (retryable).
 */
export interface MediaStore {
  store(input: StoreMediaInput): Promise<StoredMedia>;
  /** A time-limited GET URL for a stored object (what Bird receives). */
  presignedUrl(s3Key: string): Promise<string>;
}
