import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CountingProxy {
  url: string;
  /** Calls seen since the last reset, by name: the AWS operation (`x-amz-target`), else `<label> <METHOD>`. */
  counts(): Record<string, number>;
  reset(): void;
  close(): Promise<void>;
}

/**
 * A pass-through HTTP proxy in front of a stand-in that counts the calls the gateway makes, so a
 * benchmark can print calls per round trip without touching the gateway. It runs in the stand-in's
 * process: its CPU is not the gateway's. Headers go through as they are (the stand-ins behind it
 * do not check SigV4's host).
 */
export async function startCountingProxy(target: string, label: string): Promise<CountingProxy> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const base = new URL(target);
  let counts: Record<string, number> = {};
  const server = http.createServer((req, res) => {
    const amzTarget = req.headers['x-amz-target'];
    const name = typeof amzTarget === 'string' ? `${label} ${amzTarget.split('.').pop()}` : `${label} ${req.method}`;
    counts[name] = (counts[name] ?? 0) + 1;
    const upstream = http.request(
      { hostname: base.hostname, port: base.port, path: req.url, method: req.method, headers: req.headers, agent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${base.pathname.replace(/\/$/, '')}`,
    counts: () => ({ ...counts }),
    reset: () => {
      counts = {};
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
      agent.destroy();
    },
  };
}
