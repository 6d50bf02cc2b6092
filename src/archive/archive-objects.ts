import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { CONTACT_INDEX_METADATA, contactIndex, parseRecords, type ArchiveRecord } from './archive-record';

const gunzipAsync = promisify(gunzip);
const gzipAsync = promisify(gzip);

export interface ArchiveObjectRef {
  key: string;
  size: number;
}

/** The archive's objects in S3: list, read, and (for erasure) rewrite or delete. The one adapter that knows S3's shapes here. */
export class ArchiveObjects {
  constructor(private readonly options: { s3: S3Client; bucket: string }) {}

  /** Keys under a prefix in key order (1000 per S3 page; nothing held beyond the current page). */
  async *list(prefix: string): AsyncGenerator<ArchiveObjectRef> {
    let token: string | undefined;
    do {
      const page = await this.options.s3.send(new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key) yield { key: o.Key, size: o.Size ?? 0 };
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** An object's records in stored order; `undefined` for a line that is not a record. */
  async read(key: string): Promise<(ArchiveRecord | undefined)[]> {
    const out = await this.options.s3.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: key }));
    const bytes = Buffer.from(await out.Body!.transformToByteArray());
    return parseRecords((await gunzipAsync(bytes)).toString('utf8'));
  }

  async contactIndex(key: string): Promise<string | undefined> {
    const head = await this.options.s3.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: key }));
    return head.Metadata?.[CONTACT_INDEX_METADATA];
  }

  /** Write an object of NDJSON lines with the contact index of the payloads they hold; returns the compressed bytes. */
  async put(key: string, ndjson: string, records: number, contacts: Iterable<string>): Promise<number> {
    const body = await gzipAsync(Buffer.from(ndjson, 'utf8'));
    await this.options.s3.send(
      new PutObjectCommand({
        Bucket: this.options.bucket,
        Key: key,
        Body: body,
        ContentType: 'application/x-ndjson',
        ContentEncoding: 'gzip',
        Metadata: { records: String(records), [CONTACT_INDEX_METADATA]: contactIndex(contacts) },
      }),
    );
    return body.length;
  }

  /** Replace an object's records (same key), with the contact index of what remains. */
  async rewrite(key: string, records: ArchiveRecord[], contacts: Iterable<string>): Promise<void> {
    await this.put(key, records.map((r) => `${JSON.stringify(r)}\n`).join(''), records.length, contacts);
  }

  async delete(key: string): Promise<void> {
    await this.options.s3.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: key }));
  }
}
