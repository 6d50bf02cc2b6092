import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { pipeline } from 'node:stream';
import { GatewayError, PermanentError, RetryableError } from '../errors';
import type { Logger } from '../observability/logger';
import { Counter, type Registry } from '../observability/metrics';
import { AllowedHosts } from './allowed-hosts';
import { GraphMediaClient, type GraphMediaInfo } from './graph-media-client';
import { MediaDigest } from './media-digest';
import { MEDIA_SIZE_CAPS, chooseMimeType, mediaObjectKey, sha256ToHex } from './media-object';
import type { MediaStore, StoredMedia, StoreMediaInput } from './media-store';

export interface S3MediaStoreOptions {
  s3: S3Client;
  bucket: string;
  graphApiBaseUrl: string;
  graphApiVersion: string;
  /** Exact hosts and `*.suffix` wildcards; must include the Graph host. */
  allowedHosts: string[];
  urlTtlSeconds: number;
  logger: Logger;
  registry: Registry;
  fetch?: typeof fetch;
  /** Multipart tuning. Memory held per download is about partSize × (queueSize + 1). */
  partSizeBytes?: number;
  queueSize?: number;
  requestTimeoutMs?: number;
  idleTimeoutMs?: number;
  /** Refuse media URLs that are not https (production). */
  requireHttps?: boolean;
}

/** S3's smallest multipart part; with two in flight a download holds about 15 MiB. */
const MIN_PART_SIZE = 5 * 1024 * 1024;
const DEFAULT_PART_SIZE = MIN_PART_SIZE;
const DEFAULT_QUEUE_SIZE = 2;

type Stage = 'lookup' | 'download';

interface Outcome {
  stored: StoredMedia;
  uploaded: boolean;
}

/**
 * Graph → S3, streamed: Graph lookup (fresh URL every call), size cap on Graph's file_size, skip
 * if the object is already there with the same sha256, then download → MediaDigest → lib-storage
 * Upload. Never holds a whole file: at most the multipart parts in flight.
 */
export class S3MediaStore implements MediaStore {
  private readonly graph: GraphMediaClient;
  private readonly bytesTotal: Counter<'kind'>;
  private readonly downloadsTotal: Counter<'outcome'>;
  private readonly tokenFailuresTotal: Counter<'stage'>;
  private readonly partSize: number;
  private readonly queueSize: number;

  constructor(private readonly options: S3MediaStoreOptions) {
    this.graph = new GraphMediaClient({
      graphApiBaseUrl: options.graphApiBaseUrl,
      graphApiVersion: options.graphApiVersion,
      allowedHosts: new AllowedHosts(options.allowedHosts),
      fetch: options.fetch,
      requestTimeoutMs: options.requestTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
      requireHttps: options.requireHttps,
    });
    this.partSize = Math.max(options.partSizeBytes ?? DEFAULT_PART_SIZE, MIN_PART_SIZE);
    this.queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    this.bytesTotal = new Counter({
      name: 'wa_ingress_media_bytes_total',
      help: 'Media bytes downloaded from Meta and stored in S3',
      labelNames: ['kind'],
      registers: [options.registry],
    });
    this.downloadsTotal = new Counter({
      name: 'wa_ingress_media_downloads_total',
      help: 'Media store attempts by outcome: stored, already_stored, or the failure reason',
      labelNames: ['outcome'],
      registers: [options.registry],
    });
    this.tokenFailuresTotal = new Counter({
      name: 'wa_ingress_media_token_failures_total',
      help: "Media requests where Meta rejected the line's access token (401/403/code 190)",
      labelNames: ['stage'],
      registers: [options.registry],
    });
  }

  async store(input: StoreMediaInput): Promise<StoredMedia> {
    const progress = { stage: 'lookup' as Stage };
    try {
      const outcome = await this.storeChecked(input, progress);
      this.downloadsTotal.inc({ outcome: outcome.uploaded ? 'stored' : 'already_stored' });
      if (outcome.uploaded) this.bytesTotal.inc({ kind: input.media.kind }, outcome.stored.size);
      this.options.logger.debug(
        { event: 'media_stored', lineId: input.lineId, wamid: input.wamid, mediaId: input.media.id, ...outcome },
        'media stored',
      );
      return outcome.stored;
    } catch (caught) {
      const error =
        caught instanceof GatewayError
          ? caught
          : new RetryableError('media_store_failed', 'media store: S3 failed; will retry', { cause: caught });
      this.downloadsTotal.inc({ outcome: error.reason });
      const fields = {
        lineId: input.lineId,
        wamid: input.wamid,
        mediaId: input.media.id,
        kind: input.media.kind,
        stage: progress.stage,
        reason: error.reason,
        retryable: error.retryable,
      };
      if (error.reason === 'media_token_rejected') {
        this.tokenFailuresTotal.inc({ stage: progress.stage });
        // infra's CloudWatch metric filter matches `$.event = "media_token_rejected"`.
        this.options.logger.error({ ...fields, event: 'media_token_rejected' }, error.message);
      } else {
        this.options.logger.warn({ ...fields, event: 'media_store_failed', err: error }, error.message);
      }
      throw error;
    }
  }

  async presignedUrl(s3Key: string): Promise<string> {
    return getSignedUrl(this.options.s3, new GetObjectCommand({ Bucket: this.options.bucket, Key: s3Key }), {
      expiresIn: this.options.urlTtlSeconds,
    });
  }

  private async storeChecked(input: StoreMediaInput, progress: { stage: Stage }): Promise<Outcome> {
    const { media } = input;
    const cap = MEDIA_SIZE_CAPS[media.kind];
    const what = `${media.kind} ${media.id}`;
    let info = await this.graph.lookup(media.id, input.accessToken);
    if (info.fileSize !== undefined && info.fileSize > cap) {
      throw new PermanentError('media_too_large', `${what}: Graph reports ${info.fileSize} bytes, over the ${cap}-byte cap`);
    }
    const expectedSha256Hex = sha256ToHex(info.sha256) ?? sha256ToHex(media.sha256);
    if (!expectedSha256Hex) {
      // Without Meta's hash nothing proves the bytes are the user's file; refuse rather than store unchecked.
      throw new PermanentError('media_sha256_missing', `${what}: neither Graph nor the webhook gave a usable sha256`);
    }
    const mimeType = chooseMimeType(info.mimeType, media.mimeType);
    const s3Key = mediaObjectKey({ ...input, mediaId: media.id, mimeType });

    const existing = await this.existingObject(s3Key);
    if (existing && existing.sha256 === expectedSha256Hex) {
      return { stored: { s3Key, sha256: expectedSha256Hex, size: existing.size, mimeType: existing.mimeType ?? mimeType }, uploaded: false };
    }

    progress.stage = 'download';
    let stored: StoredMedia;
    try {
      stored = await this.upload(info, input.accessToken, { s3Key, mimeType, cap, expectedSha256Hex, what });
    } catch (error) {
      // Meta: a download 404 means the URL expired; ask Graph for a new one once, within this attempt.
      if (!(error instanceof GatewayError) || error.reason !== 'media_expired') throw error;
      progress.stage = 'lookup';
      info = await this.graph.lookup(media.id, input.accessToken);
      progress.stage = 'download';
      stored = await this.upload(info, input.accessToken, { s3Key, mimeType, cap, expectedSha256Hex, what });
    }
    return { stored, uploaded: true };
  }

  private async upload(
    info: GraphMediaInfo,
    accessToken: string,
    target: { s3Key: string; mimeType: string; cap: number; expectedSha256Hex: string; what: string },
  ): Promise<StoredMedia> {
    const download = await this.graph.download(info.url, accessToken);
    if (download.contentLength !== undefined && download.contentLength > target.cap) {
      download.body.destroy();
      throw new PermanentError(
        'media_too_large',
        `${target.what}: download is ${download.contentLength} bytes, over the ${target.cap}-byte cap`,
      );
    }
    const digest = new MediaDigest({ maxBytes: target.cap, expectedSha256Hex: target.expectedSha256Hex, what: target.what });
    // pipeline() carries a download error into the digest, so the uploader fails with it.
    const body = pipeline(download.body, digest, () => undefined);
    const upload = new Upload({
      client: this.options.s3,
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false,
      params: {
        Bucket: this.options.bucket,
        Key: target.s3Key,
        Body: body,
        ContentType: target.mimeType,
        // Safe to declare before the bytes are in: the upload completes only if they hash to it.
        Metadata: { sha256: target.expectedSha256Hex },
      },
    });
    try {
      await upload.done();
    } catch (error) {
      // The digest's verdict is the root cause; the uploader may report its own abort on top.
      if (digest.failure) throw digest.failure;
      if (error instanceof GatewayError) throw error;
      throw new RetryableError('media_store_failed', `${target.what}: S3 upload failed; will retry`, { cause: error });
    } finally {
      body.destroy();
    }
    if (digest.sha256Hex !== target.expectedSha256Hex) {
      // Unreachable while Upload consumes the body to its end; kept so a library change cannot store unchecked bytes silently.
      throw new RetryableError('media_sha256_mismatch', `${target.what}: upload finished before the digest was checked`);
    }
    return { s3Key: target.s3Key, sha256: digest.sha256Hex, size: digest.bytes, mimeType: target.mimeType };
  }

  private async existingObject(s3Key: string): Promise<{ sha256?: string; size: number; mimeType?: string } | undefined> {
    try {
      const head = await this.options.s3.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: s3Key }));
      return { sha256: head.Metadata?.sha256, size: head.ContentLength ?? 0, mimeType: head.ContentType };
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if ((error as Error).name === 'NotFound' || status === 404) return undefined;
      throw new RetryableError('media_store_failed', `S3 HeadObject ${s3Key} failed; will retry`, { cause: error });
    }
  }
}
