import { contactDigest, wamidDigest } from '../../src/privacy/pseudonyms';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { ConfigError, PermanentError, RetryableError } from '../../src/errors';
import { startAwsStandIns, type AwsStandIns } from '../../src/local/aws-standins';
import { generatedBytes, startGraphStandIn, type GraphStandIn } from '../../src/local/graph-standin';
import { S3MediaStore, type S3MediaStoreOptions } from '../../src/media';
import type { MediaRef } from '../../src/meta/event';
import { createLogger } from '../../src/observability/logger';
import { createRegistry, type Registry } from '../../src/observability/metrics';

const TOKEN = 'EAAG-line-token-for-tests';
const BUCKET = 'wa-ingress-media-test';
const MIB = 1024 * 1024;

let aws: AwsStandIns;
let graph: GraphStandIn;
let s3: S3Client;

beforeAll(async () => {
  [aws, graph] = await Promise.all([startAwsStandIns(), startGraphStandIn({ token: TOKEN })]);
  s3 = new S3Client({ region: 'us-east-1', endpoint: aws.endpoints.s3, forcePathStyle: true, credentials: aws.credentials });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

afterAll(async () => {
  s3.destroy();
  await Promise.all([aws.stop(), graph.stop()]);
});

beforeEach(() => graph.clearRequests());

function harness(overrides: Partial<S3MediaStoreOptions> = {}) {
  const registry = createRegistry({ defaultMetrics: false });
  const logLines: string[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void logLines.push(line) } });
  const store = new S3MediaStore({
    s3,
    bucket: BUCKET,
    graphApiBaseUrl: graph.baseUrl,
    graphApiVersion: 'v25.0',
    allowedHosts: ['127.0.0.1'],
    urlTtlSeconds: 300,
    logger,
    registry,
    ...overrides,
  });
  return { store, registry, logLines, logs: () => logLines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const values = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))?.value ?? 0;
}

let seq = 0;
/** A fresh media id and wamid per test, so tests never see each other's objects. */
function newMedia(kind: MediaRef['kind'], extra: Partial<MediaRef> = {}): MediaRef & { wamid: string } {
  seq += 1;
  return { kind, id: `${Date.now()}${seq}`, wamid: `wamid.TEST${seq}${randomBytes(4).toString('hex')}`, ...extra };
}

function input(media: MediaRef & { wamid: string }, accessToken = TOKEN) {
  return { lineId: 'line-1', accessToken, wamid: media.wamid, contact: CONTACT, media, receivedAt: new Date('2026-03-05T23:30:00-05:00') };
}

async function head(key: string) {
  return s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
}

async function expectNoObject(key: string) {
  await expect(head(key)).rejects.toMatchObject({ name: 'NotFound' });
}

async function objectSha256(key: string): Promise<{ sha256: string; size: number }> {
  const object = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of object.Body as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

function generatedSha256(size: number, seed: string): string {
  const hash = createHash('sha256');
  for (const chunk of generatedBytes(size, seed)) hash.update(chunk);
  return hash.digest('hex');
}

const CONTACT = '16505551234';
const keyFor = (media: { id: string; wamid: string }, ext: string) =>
  `media/line-1/${contactDigest(CONTACT)}/2026/03/06/${wamidDigest(media.wamid)}/${media.id}.${ext}`;

describe('S3MediaStore against s3rver and the Graph stand-in', () => {
  it('streams the bytes into S3 under the deterministic key, with sha256 metadata and content type', async () => {
    const { store, registry } = harness();
    const bytes = randomBytes(200_000);
    const media = newMedia('image', { mimeType: 'image/jpeg' });
    graph.addMedia(media.id, { body: bytes, mimeType: 'image/jpeg', sha256Encoding: 'hex' });

    const stored = await store.store(input(media));

    const sha256 = createHash('sha256').update(bytes).digest('hex');
    expect(stored).toEqual({ s3Key: keyFor(media, 'jpg'), sha256, size: bytes.length, mimeType: 'image/jpeg' });
    const object = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: stored.s3Key }));
    expect(Buffer.from(await object.Body!.transformToByteArray()).equals(bytes)).toBe(true);
    expect(object.Metadata).toEqual({ sha256 });
    expect(object.ContentType).toBe('image/jpeg');
    expect(await metric(registry, 'wa_ingress_media_bytes_total', { kind: 'image' })).toBe(bytes.length);
    expect(await metric(registry, 'wa_ingress_media_downloads_total', { outcome: 'stored' })).toBe(1);
    expect(graph.requests().map((r) => [r.kind, r.host, r.authorization, r.status])).toEqual([
      ['lookup', `127.0.0.1:${graph.port}`, true, 200],
      ['download', `127.0.0.1:${graph.port}`, true, 200],
    ]);
  });

  it("accepts Graph's sha256 in base64, and falls back to the webhook's when Graph gives none", async () => {
    const { store } = harness();
    const bytes = randomBytes(10_000);
    const sha256 = createHash('sha256').update(bytes);
    const digest = sha256.digest();

    const base64 = newMedia('audio');
    graph.addMedia(base64.id, { body: bytes, mimeType: 'audio/ogg; codecs=opus', sha256Encoding: 'base64' });
    const stored = await store.store(input(base64));
    expect(stored.sha256).toBe(digest.toString('hex'));
    expect(stored.s3Key).toBe(keyFor(base64, 'ogg'));
    expect(stored.mimeType).toBe('audio/ogg; codecs=opus');

    const fromWebhook = newMedia('audio', { sha256: digest.toString('base64') });
    graph.addMedia(fromWebhook.id, { body: bytes, mimeType: 'audio/ogg', omitSha256: true });
    expect((await store.store(input(fromWebhook))).sha256).toBe(digest.toString('hex'));

    const wrongWebhook = newMedia('audio', { sha256: createHash('sha256').update('other').digest('base64') });
    graph.addMedia(wrongWebhook.id, { body: bytes, mimeType: 'audio/ogg', omitSha256: true });
    await expect(store.store(input(wrongWebhook))).rejects.toMatchObject({ reason: 'media_sha256_mismatch' });

    const none = newMedia('audio');
    graph.addMedia(none.id, { body: bytes, mimeType: 'audio/ogg', omitSha256: true });
    await expect(store.store(input(none))).rejects.toMatchObject({ reason: 'media_sha256_missing', retryable: false });
    expect(graph.requests().filter((r) => r.kind === 'download' && r.mediaId === none.id)).toEqual([]);
  });

  it('stores a multipart upload (12 MiB document) byte-identical', async () => {
    const { store } = harness();
    const media = newMedia('document', { filename: 'report.pdf' });
    graph.addMedia(media.id, { body: { size: 12 * MIB + 123, seed: media.id }, mimeType: 'application/pdf' });

    const stored = await store.store(input(media));

    const expected = generatedSha256(12 * MIB + 123, media.id);
    expect(stored).toMatchObject({ s3Key: keyFor(media, 'pdf'), sha256: expected, size: 12 * MIB + 123 });
    expect(await objectSha256(stored.s3Key)).toEqual({ sha256: expected, size: 12 * MIB + 123 });
    expect((await head(stored.s3Key)).Metadata).toEqual({ sha256: expected });
  });

  it.each([
    ['single PutObject', 300_000],
    ['multipart', 11 * MIB],
  ])('a sha256 mismatch (%s) is retryable and leaves no object', async (_how, size) => {
    const { store, registry } = harness();
    const media = newMedia('document');
    graph.addMedia(media.id, {
      body: { size, seed: media.id },
      mimeType: 'application/pdf',
      sha256Override: createHash('sha256').update('not these bytes').digest('hex'),
    });

    const failure = store.store(input(media));

    await expect(failure).rejects.toBeInstanceOf(RetryableError);
    await expect(failure).rejects.toMatchObject({ reason: 'media_sha256_mismatch' });
    await expectNoObject(keyFor(media, 'pdf'));
    expect(await metric(registry, 'wa_ingress_media_downloads_total', { outcome: 'media_sha256_mismatch' })).toBe(1);
    expect(await metric(registry, 'wa_ingress_media_bytes_total', { kind: 'document' })).toBe(0);
  });

  it("refuses media over the cap by Graph's file_size without downloading", async () => {
    const { store } = harness();
    const media = newMedia('sticker');
    graph.addMedia(media.id, { body: randomBytes(1000), mimeType: 'image/webp', fileSizeOverride: 500 * 1024 + 1 });

    await expect(store.store(input(media))).rejects.toMatchObject({ reason: 'media_too_large', retryable: false });
    expect(graph.requests().map((r) => r.kind)).toEqual(['lookup']);
    await expectNoObject(keyFor(media, 'webp'));
  });

  it.each([
    ['Content-Length shows it', false],
    ['only the running count shows it (chunked)', true],
  ])('refuses media whose file_size lies when %s, leaving no object', async (_how, omitContentLength) => {
    const { store } = harness();
    const media = newMedia('image');
    graph.addMedia(media.id, {
      body: { size: 6 * MIB, seed: media.id },
      mimeType: 'image/png',
      fileSizeOverride: '1000',
      omitContentLength,
    });

    const failure = store.store(input(media));

    await expect(failure).rejects.toBeInstanceOf(PermanentError);
    await expect(failure).rejects.toMatchObject({ reason: 'media_too_large' });
    await expectNoObject(keyFor(media, 'png'));
  });

  it('classifies a rejected token as permanent, counts it and logs event media_token_rejected', async () => {
    const { store, registry, logs, logLines } = harness();
    const media = newMedia('image');
    graph.addMedia(media.id, { body: randomBytes(100), mimeType: 'image/jpeg' });

    const failure = store.store(input(media, 'EAAG-revoked-token'));

    await expect(failure).rejects.toBeInstanceOf(PermanentError);
    await expect(failure).rejects.toMatchObject({ reason: 'media_token_rejected' });
    expect(await metric(registry, 'wa_ingress_media_token_failures_total', { stage: 'lookup' })).toBe(1);
    const line = logs().find((l) => l.event === 'media_token_rejected');
    expect(line).toMatchObject({ level: 'error', lineId: 'line-1', mediaId: media.id, stage: 'lookup', reason: 'media_token_rejected' });
    expect(logLines.join('\n')).not.toContain('EAAG-revoked-token');

    // The CDN can refuse the token too.
    const cdn = newMedia('image');
    graph.addMedia(cdn.id, { body: randomBytes(100), mimeType: 'image/jpeg', downloadStatus: 403 });
    await expect(store.store(input(cdn))).rejects.toMatchObject({ reason: 'media_token_rejected' });
    expect(await metric(registry, 'wa_ingress_media_token_failures_total', { stage: 'download' })).toBe(1);
    expect(logLines.join('\n')).not.toContain(TOKEN);
  });

  it('classifies an unknown or expired media id as permanent media_expired', async () => {
    const { store } = harness();
    const media = newMedia('video');
    const failure = store.store(input(media));
    await expect(failure).rejects.toBeInstanceOf(PermanentError);
    await expect(failure).rejects.toMatchObject({ reason: 'media_expired' });
  });

  it('asks Graph for a new URL once when the download URL answers 404, within the same attempt', async () => {
    const { store } = harness();
    const media = newMedia('image');
    graph.addMedia(media.id, { body: randomBytes(1000), mimeType: 'image/jpeg' });
    graph.failNextDownloads(1, 404);

    await store.store(input(media));

    expect(graph.requests().map((r) => [r.kind, r.status])).toEqual([
      ['lookup', 200],
      ['download', 404],
      ['lookup', 200],
      ['download', 200],
    ]);
  });

  it('classifies 5xx and network errors as retryable, and fetches a fresh Graph URL on every attempt', async () => {
    const { store } = harness();
    const media = newMedia('image');
    const bytes = randomBytes(5000);
    graph.addMedia(media.id, { body: bytes, mimeType: 'image/jpeg' });

    graph.failNextLookups(1, 500);
    await expect(store.store(input(media))).rejects.toMatchObject({ reason: 'media_unavailable', retryable: true });
    graph.failNextDownloads(1, 500);
    const failure = store.store(input(media));
    await expect(failure).rejects.toBeInstanceOf(RetryableError);
    await expect(failure).rejects.toMatchObject({ reason: 'media_unavailable' });
    await expectNoObject(keyFor(media, 'jpg'));
    const stored = await store.store(input(media));
    expect(stored.size).toBe(bytes.length);
    expect(graph.requests().filter((r) => r.kind === 'lookup')).toHaveLength(3);
    expect(graph.requests().filter((r) => r.kind === 'download').map((r) => r.status)).toEqual([500, 200]);

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as { port: number };
    await new Promise((resolve) => closed.close(resolve));
    const offline = harness({ graphApiBaseUrl: `http://127.0.0.1:${port}` });
    await expect(offline.store.store(input(media))).rejects.toMatchObject({ reason: 'media_unavailable', retryable: true });
  });

  it('never sends the token to a host outside the allow-list, directly or through a redirect', async () => {
    const { store } = harness();
    const direct = newMedia('image');
    graph.addMedia(direct.id, { body: randomBytes(100), mimeType: 'image/jpeg', downloadHost: 'localhost' });
    await expect(store.store(input(direct))).rejects.toMatchObject({ reason: 'media_host_not_allowed', retryable: false });

    const redirected = newMedia('image');
    graph.addMedia(redirected.id, { body: randomBytes(100), mimeType: 'image/jpeg', redirectHost: 'localhost' });
    await expect(store.store(input(redirected))).rejects.toMatchObject({ reason: 'media_host_not_allowed' });

    const requests = graph.requests();
    expect(requests.filter((r) => !r.host.startsWith('127.0.0.1:'))).toEqual([]);
    expect(requests.map((r) => [r.kind, r.mediaId, r.status])).toEqual([
      ['lookup', direct.id, 200],
      ['lookup', redirected.id, 200],
      ['download', redirected.id, 302],
    ]);
    await expectNoObject(keyFor(redirected, 'jpg'));

    // An allowed hop is followed, token and all.
    const allowedHop = newMedia('image');
    graph.addMedia(allowedHop.id, { body: randomBytes(100), mimeType: 'image/jpeg', downloadHost: 'localhost', redirectHost: '127.0.0.1' });
    const both = harness({ allowedHosts: ['127.0.0.1', 'localhost'] });
    await expect(both.store.store(input(allowedHop))).resolves.toMatchObject({ size: 100 });
  });

  it('refuses at construction a Graph host that is not allowed', () => {
    expect(() => harness({ allowedHosts: ['lookaside.fbsbx.com'] })).toThrow(ConfigError);
  });

  it('in production (requireHttps) refuses a Graph API over plain http before any token is sent', () => {
    expect(() => harness({ requireHttps: true })).toThrow(/must be https/);
    expect(graph.requests()).toEqual([]);
  });

  it('skips the upload when the object is already there with the same sha256', async () => {
    const { store, registry } = harness();
    const media = newMedia('image');
    const bytes = randomBytes(3000);
    graph.addMedia(media.id, { body: bytes, mimeType: 'image/jpeg' });

    const first = await store.store(input(media));
    const before = (await head(first.s3Key)).LastModified;
    await new Promise((resolve) => setTimeout(resolve, 1100)); // S3 timestamps have one-second resolution.
    const second = await store.store(input(media));

    expect(second).toEqual(first);
    expect((await head(first.s3Key)).LastModified).toEqual(before);
    expect(graph.requests().map((r) => r.kind)).toEqual(['lookup', 'download', 'lookup']);
    expect(await metric(registry, 'wa_ingress_media_downloads_total', { outcome: 'already_stored' })).toBe(1);
    expect(await metric(registry, 'wa_ingress_media_bytes_total', { kind: 'image' })).toBe(bytes.length);
  });

  it('presigns a GET URL that serves the stored bytes', async () => {
    const { store } = harness({ urlTtlSeconds: 120 });
    const media = newMedia('image');
    const bytes = randomBytes(2000);
    graph.addMedia(media.id, { body: bytes, mimeType: 'image/jpeg' });
    const stored = await store.store(input(media));

    const url = await store.presignedUrl(stored.s3Key);

    expect(new URL(url).searchParams.get('X-Amz-Expires')).toBe('120');
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);
  });
});
