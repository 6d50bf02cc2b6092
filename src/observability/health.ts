import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

/** The worker role has no Express app: this serves its /healthz, /readyz and /metrics for the container and Prometheus. */
export async function startHealthServer(options: { port: number; host?: string; registry: Registry; isReady: () => boolean }): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const json = (status: number, body: object) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET') return json(405, { error: 'method_not_allowed' });
    if (req.url === '/healthz') return json(200, { status: 'ok' });
    if (req.url === '/readyz') return options.isReady() ? json(200, { status: 'ready' }) : json(503, { error: 'draining' });
    if (req.url === '/metrics') {
      options.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': options.registry.contentType });
          res.end(text);
        },
        () => json(500, { error: 'metrics_failed' }),
      );
      return;
    }
    json(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
