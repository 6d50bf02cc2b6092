import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';

/** One HTTP exchange, as the Bird and Graph clients describe it. */
export interface HttpExchange {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: string | Buffer;
  /** Aborts the exchange; the promise then rejects with the signal's reason, as `fetch` does. */
  signal?: AbortSignal;
}

/** The whole answer: the body is always read to its end, so the socket goes back to the pool. */
export interface HttpAnswer {
  status: number;
  ok: boolean;
  headers: IncomingHttpHeaders;
  text: string;
}

/** Small port so the clients can be given another transport in a test or a bench. */
export interface HttpTransport {
  exchange(exchange: HttpExchange): Promise<HttpAnswer>;
}

export interface KeepAliveHttpTransportOptions {
  /**
   * How long an idle socket stays pooled. Under the 5 s keep-alive of Node servers and most
   * load balancers, so we close an idle socket before the far end does and never write a POST
   * onto a socket that is being closed (that would turn a Graph send ambiguous). Undici's default.
   */
  idleSocketMs?: number;
  /** Unbounded by default, as with `fetch`: each caller bounds its own concurrency. */
  maxSocketsPerHost?: number;
  /**
   * Longest wait for a new connection (TLS included), as undici's 10 s: past it the call fails with
   * CONNECT_TIMEOUT_CODE, and since nothing was written, a Graph send knows it was not sent.
   */
  connectTimeoutMs?: number;
}

/** The `code` of the error a connection that never opened ends with. */
export const CONNECT_TIMEOUT_CODE = 'ECONNECT_TIMEOUT';

/**
 * `http(s).request` on keep-alive agents, in place of the global `fetch`: the same reuse of
 * sockets for about a seventh of the CPU per call (undici's fetch builds WHATWG Request, Headers
 * and stream objects on each call). Redirects are never followed, like `redirect: 'manual'`: a
 * 3xx comes back as an answer, and the credentials in the headers go nowhere else.
 */
export class KeepAliveHttpTransport implements HttpTransport {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly connectTimeoutMs: number;

  constructor(options: KeepAliveHttpTransportOptions = {}) {
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    const agentOptions = { keepAlive: true, timeout: options.idleSocketMs ?? 4000, maxSockets: options.maxSocketsPerHost ?? Infinity, scheduling: 'lifo' as const };
    this.httpAgent = new http.Agent(agentOptions);
    this.httpsAgent = new https.Agent(agentOptions);
  }

  exchange(exchange: HttpExchange): Promise<HttpAnswer> {
    const { signal } = exchange;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<HttpAnswer>((resolve, reject) => {
      let url: URL;
      try {
        url = new URL(exchange.url);
      } catch (error) {
        reject(Object.assign(new TypeError(`Invalid URL`, { cause: error }), { code: 'ERR_INVALID_URL' }));
        return;
      }
      const secure = url.protocol === 'https:';
      if (!secure && url.protocol !== 'http:') {
        reject(Object.assign(new TypeError(`Unsupported protocol ${url.protocol}`), { code: 'ERR_INVALID_URL' }));
        return;
      }
      const headers: Record<string, string | number> = { ...exchange.headers };
      if (exchange.body !== undefined) headers['content-length'] = Buffer.byteLength(exchange.body);
      const request = (secure ? https : http).request(url, { method: exchange.method, headers, agent: secure ? this.httpsAgent : this.httpAgent });
      request.once('socket', (socket) => {
        if (!socket.connecting) return; // a pooled socket, already open
        const connected = secure ? 'secureConnect' : 'connect';
        const timer = setTimeout(
          () => request.destroy(Object.assign(new Error(`No connection to ${url.host} within ${this.connectTimeoutMs} ms`), { code: CONNECT_TIMEOUT_CODE })),
          this.connectTimeoutMs,
        );
        socket.once(connected, () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      const onAbort = () => request.destroy(signal!.reason instanceof Error ? signal!.reason : new Error(String(signal!.reason)));
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = (done: () => void) => {
        signal?.removeEventListener('abort', onAbort);
        done();
      };
      // An abort surfaces as the signal's reason (a TimeoutError from AbortSignal.timeout), as with fetch.
      const fail = (error: unknown) => settle(() => reject(signal?.aborted ? signal.reason : error));
      request.once('error', fail);
      request.once('response', (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.once('error', fail);
        response.once('close', () => {
          if (!response.complete) fail(Object.assign(new Error('The connection closed before the answer ended'), { code: 'ECONNRESET' }));
        });
        response.once('end', () => {
          const status = response.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          settle(() => resolve({ status, ok: status >= 200 && status < 300, headers: response.headers, text }));
        });
      });
      request.end(exchange.body);
    });
  }

  /** Closes the pooled sockets (shutdown, tests). */
  destroy(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** The process's one pool of sockets to Bird and Graph, used by every client not given its own. */
export const sharedHttpTransport: HttpTransport = new KeepAliveHttpTransport();

/** A header's single value, as `Headers.get` gives it. */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | null {
  const value = headers[name.toLowerCase()];
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(', ') : value;
}
