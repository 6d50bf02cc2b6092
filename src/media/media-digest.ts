import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { type GatewayError, PermanentError, RetryableError } from '../errors';

/**
 * Passes media bytes through while hashing and counting them. It fails the stream as soon as the
 * running count passes the cap, and checks the sha256 in flush(): a Transform's readable side
 * ends only after flush succeeds, so on a mismatch the uploader sees an error instead of the end
 * of the body and never completes the S3 object.
 */
export class MediaDigest extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  /** Set once the whole body went through. */
  sha256Hex?: string;
  /** The check that failed, if any: the root cause, whatever the uploader reports on top. */
  failure?: GatewayError;

  constructor(private readonly check: { maxBytes: number; expectedSha256Hex: string; what: string }) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.check.maxBytes) {
      callback(
        this.fail(
          new PermanentError('media_too_large', `${this.check.what}: more than ${this.check.maxBytes} bytes arrived; cap exceeded`),
        ),
      );
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.sha256Hex = this.hash.digest('hex');
    if (this.sha256Hex !== this.check.expectedSha256Hex) {
      callback(
        this.fail(
          new RetryableError(
            'media_sha256_mismatch',
            `${this.check.what}: sha256 of the ${this.bytes} bytes received differs from Meta's; nothing stored, will retry`,
          ),
        ),
      );
      return;
    }
    callback();
  }

  private fail(error: GatewayError): GatewayError {
    this.failure = error;
    return error;
  }
}
