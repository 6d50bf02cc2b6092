import { Readable } from 'node:stream';
import { z } from 'zod';
import { ConfigError, GatewayError, PermanentError, RetryableError } from '../errors';
import type { AllowedHosts } from './allowed-hosts';
import { parseFileSize } from './media-object';

/** What Graph says about a media id; `url` lives about 5 minutes, so it is never cached. */
export interface GraphMediaInfo {
  id: string;
  url: string;
  mimeType?: string;
  /** As Graph sent it: hex or base64. */
  sha256?: string;
  fileSize?: number;
}

export interface MediaDownload {
  body: Readable;
  contentLength?: number;
  /** The host that finally served the bytes (after redirects). */
  host: string;
}

export interface GraphMediaClientOptions {
  graphApiBaseUrl: string;
  graphApiVersion: string;
  allowedHosts: AllowedHosts;
  fetch?: typeof fetch;
  /** Until response headers arrive, for the Graph call and each download hop. */
  requestTimeoutMs?: number;
  /** Longest pause between two chunks of a download before it is abandoned. */
  idleTimeoutMs?: number;
  maxRedirects?: number;
  /** Production: the token never travels over plain http, not even to an allowed host. */
  requireHttps?: boolean;
}

const graphMediaSchema = z.object({
  id: z.string().min(1),
  url: z.string().min(1),
  mime_type: z.string().optional(),
  sha256: z.string().optional(),
  file_size: z.union([z.string(), z.number()]).optional(),
});

const graphErrorSchema = z.object({
  error: z.object({ code: z.number().optional(), error_subcode: z.number().optional(), message: z.string().optional() }),
});

/** Graph codes that mean "slow down": app/user/business rate limits and WhatsApp's own. */
const RATE_LIMIT_CODES = new Set([4, 17, 32, 613, 80007, 130429]);

/**
 * Graph answers for `GET /{version}/{media-id}` and for the download URL, as the errors the worker
 * tells apart. Pure so each mapping is table-tested.
 */
export function classifyMediaHttpFailure(stage: 'lookup' | 'download', status: number, body: unknown): GatewayError {
  const parsed = graphErrorSchema.safeParse(body);
  const code = parsed.success ? parsed.data.error.code : undefined;
  const where = stage === 'lookup' ? 'Graph media lookup' : 'media download';
  const detail = `${where} answered HTTP ${status}${code !== undefined ? ` (Graph error code ${code})` : ''}`;
  if (status === 401 || status === 403 || code === 190) {
    return new PermanentError('media_token_rejected', `${detail}: the line's access token was rejected; renew it in the line's configuration`);
  }
  if (status === 429 || (code !== undefined && RATE_LIMIT_CODES.has(code))) {
    return new RetryableError('media_rate_limited', `${detail}: rate limited by Meta`);
  }
  if (status === 404 || ((status === 400 || status === 404) && code === 100)) {
    return new PermanentError('media_expired', `${detail}: the media id is unknown or expired (webhook media ids live 7 days)`);
  }
  if (status >= 500) return new RetryableError('media_unavailable', `${detail}: Meta is failing; will retry`);
  return new PermanentError('media_rejected', `${detail}: request refused`);
}

/**
 * Graph's media API and the download that follows. Sends the bearer token only to allow-listed
 * hosts: the Graph host is checked at construction, and the media URL and every redirect hop are
 * checked before the request. A hop to a host outside the list is refused, not followed without
 * the token: Meta's CDN stays inside its own domains, so such a hop means a misconfiguration or an
 * attack, and failing loudly (reason `media_host_not_allowed`) lets the operator extend the list.
 */
export class GraphMediaClient {
  private readonly fetch: typeof fetch;
  private readonly graphBase: URL;
  private readonly requestTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly maxRedirects: number;

  constructor(private readonly options: GraphMediaClientOptions) {
    this.fetch = options.fetch ?? globalThis.fetch;
    this.graphBase = new URL(options.graphApiBaseUrl);
    if (!options.allowedHosts.allows(this.graphBase.hostname)) {
      throw new ConfigError(
        `GRAPH_API_BASE_URL host ${this.graphBase.hostname} is not in MEDIA_ALLOWED_HOSTS: no media could be fetched`,
      );
    }
    if (options.requireHttps && this.graphBase.protocol !== 'https:') {
      throw new ConfigError('GRAPH_API_BASE_URL must be https: the Graph token travels with every call');
    }
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
    this.maxRedirects = options.maxRedirects ?? 5;
  }

  async lookup(mediaId: string, accessToken: string): Promise<GraphMediaInfo> {
    const base = this.graphBase.href.replace(/\/+$/, '');
    const url = `${base}/${encodeURIComponent(this.options.graphApiVersion)}/${encodeURIComponent(mediaId)}`;
    const response = await this.request(url, accessToken, 'lookup');
    if (response.status !== 200) {
      const body = await response.json().catch(() => undefined);
      if (response.status >= 300 && response.status < 400) {
        throw new RetryableError('media_unavailable', `Graph media lookup answered a redirect (HTTP ${response.status})`);
      }
      throw classifyMediaHttpFailure('lookup', response.status, body);
    }
    const parsed = graphMediaSchema.safeParse(await response.json().catch(() => undefined));
    if (!parsed.success) {
      throw new RetryableError('media_unavailable', 'Graph media lookup answered 200 without a usable {url, id}');
    }
    const info = parsed.data;
    return {
      id: info.id,
      url: info.url,
      mimeType: info.mime_type,
      sha256: info.sha256,
      fileSize: parseFileSize(info.file_size),
    };
  }

  /** Opens the download, following redirects by hand so each hop's host is checked first. */
  async download(mediaUrl: string, accessToken: string): Promise<MediaDownload> {
    let url = this.checkedUrl(mediaUrl, undefined);
    for (let hop = 0; hop <= this.maxRedirects; hop++) {
      const controller = new AbortController();
      const response = await this.request(url.href, accessToken, 'download', controller);
      if (response.status >= 300 && response.status < 400) {
        await response.body?.cancel().catch(() => undefined);
        const location = response.headers.get('location');
        if (!location) throw new RetryableError('media_unavailable', `media download: HTTP ${response.status} without Location`);
        url = this.checkedUrl(location, url);
        continue;
      }
      if (response.status !== 200 || !response.body) {
        const body = await response.json().catch(() => undefined);
        throw classifyMediaHttpFailure('download', response.status, body);
      }
      return {
        body: this.watchedBody(response.body, controller),
        contentLength: parseFileSize(response.headers.get('content-length')),
        host: url.hostname,
      };
    }
    throw new PermanentError('media_rejected', `media download: more than ${this.maxRedirects} redirects`);
  }

  private checkedUrl(value: string, previous: URL | undefined): URL {
    let url: URL;
    try {
      url = previous ? new URL(value, previous) : new URL(value);
    } catch (cause) {
      throw new PermanentError('media_rejected', 'media download: Graph gave a URL that does not parse', { cause });
    }
    const downgrade = (previous?.protocol === 'https:' || this.options.requireHttps === true) && url.protocol !== 'https:';
    if ((url.protocol !== 'https:' && url.protocol !== 'http:') || downgrade) {
      throw new PermanentError('media_host_not_allowed', `media download: refusing ${url.protocol} URL (host ${url.hostname})`);
    }
    if (!this.options.allowedHosts.allows(url.hostname)) {
      throw new PermanentError(
        'media_host_not_allowed',
        `media download: host ${url.hostname} is not in MEDIA_ALLOWED_HOSTS; the token was not sent. Add it if it is Meta's`,
      );
    }
    return url;
  }

  private async request(
    url: string,
    accessToken: string,
    stage: 'lookup' | 'download',
    controller = new AbortController(),
  ): Promise<Response> {
    const timer = setTimeout(() => controller.abort(), this.requestTimeoutMs);
    try {
      return await this.fetch(url, {
        headers: { authorization: `Bearer ${accessToken}` },
        redirect: 'manual',
        signal: controller.signal,
      });
    } catch (cause) {
      const what = controller.signal.aborted ? `no answer within ${this.requestTimeoutMs} ms` : 'network error';
      throw new RetryableError('media_unavailable', `${stage === 'lookup' ? 'Graph media lookup' : 'media download'}: ${what}`, { cause });
    } finally {
      clearTimeout(timer);
    }
  }

  /** The response body as a Node stream that gives up when the CDN stalls, with network errors made retryable. */
  private watchedBody(body: ReadableStream<Uint8Array>, controller: AbortController): Readable {
    const idleTimeoutMs = this.idleTimeoutMs;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      const idle = setTimeout(() => controller.abort(), idleTimeoutMs);
      try {
        for await (const chunk of body) {
          idle.refresh();
          yield chunk;
        }
      } catch (cause) {
        const what = controller.signal.aborted ? `stalled for ${idleTimeoutMs} ms` : 'connection lost';
        throw new RetryableError('media_unavailable', `media download: ${what}`, { cause });
      } finally {
        clearTimeout(idle);
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }
}
