import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable, pipeline } from 'node:stream';
import type { Logger } from '../observability/logger';
import { MessagesStandIn, type MessagesStandInOptions } from './graph-messages-standin';
import { WatchStandIn, type WatchStandInOptions } from './graph-watch-standin';

/**
 * A loopback stand-in for Graph's media API, speaking the documented shapes:
 * `GET /{version}/{media-id}` → `{messaging_product, url, mime_type, sha256, file_size, id}` and a
 * lookaside-like download URL (signed, short-lived, bearer required). Used by the embedded default
 * (`serveAnyMediaId`), the media tests and bench/media. Never loaded in production.
 */
export interface GraphStandInOptions {
  port?: number;
  host?: string;
  /** The only token accepted; omit to accept any bearer token. */
  token?: string;
  /** Unknown ids get a generated deterministic body instead of Graph's "does not exist". */
  serveAnyMediaId?: boolean;
  /** How long a download URL stays valid (Meta: about 5 minutes). */
  downloadUrlTtlMs?: number;
  logger?: Logger;
  /** `/messages`: outbox file, status webhooks back to the gateway. */
  messages?: Omit<MessagesStandInOptions, 'logger'>;
  /** The Meta watcher's reads (subscribed_apps, the number's webhook_configuration). */
  watch?: WatchStandInOptions;
}

export interface StandInMedia {
  /** Bytes, or `{size, seed}`: deterministic bytes generated while streaming, never held whole. */
  body: Buffer | { size: number; seed: string | number };
  mimeType: string;
  /** Lie about the hash (sent as given, in place of the real one). */
  sha256Override?: string;
  /** Encoding of the real hash in the Graph answer; hex unless told. */
  sha256Encoding?: 'base64' | 'hex';
  /** Leave sha256 out of the Graph answer. */
  omitSha256?: boolean;
  /** Answer the Graph lookup with this status and Graph's error JSON. */
  status?: number;
  /** Answer the download with this status. */
  downloadStatus?: number;
  /** Lie about file_size (`null` leaves it out). Default: the real size, as a string like Meta's example. */
  fileSizeOverride?: number | string | null;
  /** Host name put in the download URL (same port), e.g. `localhost` when tests allow only 127.0.0.1. */
  downloadHost?: string;
  /** The download answers 302 to the same URL on this host name first. */
  redirectHost?: string;
  /** Stream the download chunked, without Content-Length. */
  omitContentLength?: boolean;
}

export interface RecordedGraphRequest {
  kind: 'lookup' | 'download' | 'send' | 'watch' | 'other';
  method: string;
  path: string;
  /** The Host header as sent. */
  host: string;
  /** Whether an Authorization header was sent at all. */
  authorization: boolean;
  mediaId?: string;
  status: number;
}

export interface GraphStandIn {
  baseUrl: string;
  host: string;
  port: number;
  addMedia(id: string, media: StandInMedia): void;
  /** The next n downloads answer `status` (500 unless told). */
  failNextDownloads(n: number, status?: number): void;
  /** The next n Graph lookups answer `status` (500 unless told). */
  failNextLookups(n: number, status?: number): void;
  /** `POST /{version}/{phone_number_id}/messages`: sends, read calls, faults, status webhooks. */
  messages: MessagesStandIn;
  /** The watcher's reads, with programmable drift (unsubscribe, overrides, 190, status, quality). */
  watch: WatchStandIn;
  requests(): RecordedGraphRequest[];
  clearRequests(): void;
  stop(): Promise<void>;
}

interface MediaEntry extends StandInMedia {
  size: number;
  sha256?: Buffer;
}

const CHUNK = 64 * 1024;
const DOWNLOAD_PATH = '/whatsapp_business/attachments/';

/** Deterministic, non-periodic bytes: a seeded 1 MiB pattern with each 64 KiB chunk stamped with its index. */
export function* generatedBytes(size: number, seed: string | number): Generator<Buffer> {
  const pattern = Buffer.allocUnsafe(1024 * 1024);
  for (let i = 0; i < pattern.length / 32; i++) {
    createHash('sha256').update(`${seed}:${i}`).digest().copy(pattern, i * 32);
  }
  for (let offset = 0, index = 0; offset < size; offset += CHUNK, index++) {
    const length = Math.min(CHUNK, size - offset);
    const chunk = Buffer.allocUnsafe(length);
    pattern.copy(chunk, 0, offset % pattern.length, (offset % pattern.length) + length);
    if (length >= 8) chunk.writeBigUInt64BE(BigInt(index), 0);
    yield chunk;
  }
}

function bodyChunks(entry: MediaEntry): Iterable<Buffer> {
  return Buffer.isBuffer(entry.body) ? [entry.body] : generatedBytes(entry.body.size, entry.body.seed);
}

function sha256Of(entry: MediaEntry): Buffer {
  if (!entry.sha256) {
    const hash = createHash('sha256');
    for (const chunk of bodyChunks(entry)) hash.update(chunk);
    entry.sha256 = hash.digest();
  }
  return entry.sha256;
}

/** Small valid files for ids that hint at a type; anything else gets a few KB of deterministic bytes. */
const SAMPLE_FILES: Array<{ hint: RegExp; mimeType: string; body: () => Buffer }> = [
  {
    hint: /png/i,
    mimeType: 'image/png',
    body: () => Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=', 'base64'),
  },
  {
    hint: /webp|sticker/i,
    mimeType: 'image/webp',
    body: () => Buffer.from('UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==', 'base64'),
  },
  { hint: /pdf|document/i, mimeType: 'application/pdf', body: minimalPdf },
  { hint: /txt|text/i, mimeType: 'text/plain', body: () => Buffer.from('wa-ingress Graph stand-in sample document\n') },
];

function minimalPdf(): Buffer {
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] >>',
  ];
  let pdf = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((object, i) => {
    offsets.push(pdf.length);
    pdf += `${i + 1} 0 obj\n${object}\nendobj\n`;
  });
  const xref = pdf.length;
  pdf += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const offset of offsets) pdf += `${String(offset).padStart(10, '0')} 00000 n \n`;
  pdf += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(pdf, 'latin1');
}

function generatedEntry(id: string): MediaEntry {
  const sample = SAMPLE_FILES.find((s) => s.hint.test(id));
  if (sample) {
    const body = sample.body();
    return { body, mimeType: sample.mimeType, size: body.length };
  }
  const size = 4096;
  return { body: Buffer.concat([...generatedBytes(size, id)]), mimeType: 'application/octet-stream', size };
}

function graphError(res: ServerResponse, status: number, mediaId?: string): void {
  const error =
    status === 401 || status === 403
      ? { message: 'Invalid OAuth access token - Cannot parse access token', type: 'OAuthException', code: 190, fbtrace_id: 'standin' }
      : status === 400 || status === 404
        ? {
            message: `Unsupported get request. Object with ID '${mediaId ?? ''}' does not exist, cannot be loaded due to missing permissions, or does not support this operation.`,
            type: 'GraphMethodException',
            code: 100,
            error_subcode: 33,
            fbtrace_id: 'standin',
          }
        : status === 429
          ? { message: '(#4) Application request limit reached', type: 'OAuthException', code: 4, fbtrace_id: 'standin' }
          : { message: 'An unexpected error has occurred. Please retry your request later.', type: 'OAuthException', code: 2, is_transient: true, fbtrace_id: 'standin' };
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error }));
}

export async function startGraphStandIn(options: GraphStandInOptions = {}): Promise<GraphStandIn> {
  const host = options.host ?? '127.0.0.1';
  const ttlMs = options.downloadUrlTtlMs ?? 5 * 60_000;
  const signingKey = randomBytes(32);
  const media = new Map<string, MediaEntry>();
  const recorded: RecordedGraphRequest[] = [];
  const faults = { downloads: { n: 0, status: 500 }, lookups: { n: 0, status: 500 } };
  let port = 0;
  const messages = new MessagesStandIn({ ...options.messages, logger: options.logger });
  const watch = new WatchStandIn(options.watch);

  const sign = (id: string, expires: number) => createHmac('sha256', signingKey).update(`${id}:${expires}`).digest('hex');
  const validSignature = (id: string, expires: number, hash: string) => {
    const expected = Buffer.from(sign(id, expires));
    const given = Buffer.from(hash);
    return expected.length === given.length && timingSafeEqual(expected, given) && expires * 1000 > Date.now();
  };
  const bearerOk = (req: IncomingMessage) => {
    const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    return match !== null && (options.token === undefined || match[1] === options.token);
  };
  const entryFor = (id: string): MediaEntry | undefined => {
    let entry = media.get(id);
    if (!entry && options.serveAnyMediaId) {
      entry = generatedEntry(id);
      media.set(id, entry);
    }
    return entry;
  };

  const handle = (req: IncomingMessage, res: ServerResponse, record: RecordedGraphRequest) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? host}`);
    if (req.method === 'GET' && url.pathname === DOWNLOAD_PATH) {
      record.kind = 'download';
      const id = url.searchParams.get('mid') ?? '';
      record.mediaId = id;
      const entry = media.get(id);
      if (!bearerOk(req)) return graphError(res, 401);
      if (!entry || !validSignature(id, Number(url.searchParams.get('ext')), url.searchParams.get('hash') ?? '')) {
        // Meta: an expired download URL answers 404.
        return res.writeHead(404).end();
      }
      if (faults.downloads.n > 0) {
        faults.downloads.n--;
        return graphError(res, faults.downloads.status);
      }
      if (entry.downloadStatus) return graphError(res, entry.downloadStatus, id);
      if (entry.redirectHost && !url.searchParams.has('hop')) {
        url.host = `${entry.redirectHost}:${port}`;
        url.searchParams.set('hop', '2');
        return res.writeHead(302, { location: url.href }).end();
      }
      res.writeHead(200, {
        'content-type': entry.mimeType,
        ...(entry.omitContentLength ? {} : { 'content-length': String(entry.size) }),
      });
      pipeline(Readable.from(bodyChunks(entry)), res, () => undefined);
      return;
    }
    const send = /^\/v\d+\.\d+\/([0-9]+)\/messages$/.exec(url.pathname);
    if (req.method === 'POST' && send) {
      record.kind = 'send';
      if (!bearerOk(req)) {
        req.resume();
        return graphError(res, 401);
      }
      return messages.handle(req, res, send[1] ?? '');
    }
    const watchRead = req.method === 'GET' ? WatchStandIn.matches(url.pathname, url.searchParams.get('fields')) : undefined;
    if (watchRead) {
      record.kind = 'watch';
      if (!bearerOk(req)) return graphError(res, 401);
      return watch.handle(res, watchRead, url.searchParams.get('fields'));
    }
    const lookup = /^\/(v\d+\.\d+)\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && lookup) {
      record.kind = 'lookup';
      const id = decodeURIComponent(lookup[2] ?? '');
      record.mediaId = id;
      if (!bearerOk(req)) return graphError(res, 401);
      if (faults.lookups.n > 0) {
        faults.lookups.n--;
        return graphError(res, faults.lookups.status);
      }
      const entry = entryFor(id);
      if (!entry) return graphError(res, 400, id);
      if (entry.status) return graphError(res, entry.status, id);
      const expires = Math.floor((Date.now() + ttlMs) / 1000);
      const download = new URL(`http://${entry.downloadHost ?? host}:${port}${DOWNLOAD_PATH}`);
      download.searchParams.set('mid', id);
      download.searchParams.set('ext', String(expires));
      download.searchParams.set('hash', sign(id, expires));
      const sha256 = entry.omitSha256
        ? undefined
        : (entry.sha256Override ?? sha256Of(entry).toString(entry.sha256Encoding === 'base64' ? 'base64' : 'hex'));
      const fileSize = entry.fileSizeOverride === undefined ? String(entry.size) : (entry.fileSizeOverride ?? undefined);
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({ messaging_product: 'whatsapp', url: download.href, mime_type: entry.mimeType, sha256, file_size: fileSize, id }),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'Unknown path', code: 803 } }));
  };

  const server: Server = createServer((req, res) => {
    const record: RecordedGraphRequest = {
      kind: 'other',
      method: req.method ?? '',
      path: (req.url ?? '').split('?')[0] ?? '',
      host: req.headers.host ?? '',
      authorization: req.headers.authorization !== undefined,
      status: 0,
    };
    recorded.push(record);
    res.on('finish', () => {
      record.status = res.statusCode;
      options.logger?.debug({ graphStandIn: record }, 'graph stand-in request');
    });
    handle(req, res, record);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  port = (server.address() as AddressInfo).port;

  return {
    baseUrl: `http://${host}:${port}`,
    host,
    port,
    addMedia(id, entry) {
      const size = Buffer.isBuffer(entry.body) ? entry.body.length : entry.body.size;
      media.set(id, { ...entry, size });
    },
    failNextDownloads(n, status = 500) {
      faults.downloads = { n, status };
    },
    failNextLookups(n, status = 500) {
      faults.lookups = { n, status };
    },
    messages,
    watch,
    requests: () => recorded.map((r) => ({ ...r })),
    clearRequests() {
      recorded.length = 0;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        messages.stop();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
