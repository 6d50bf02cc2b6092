import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A loopback HTTP proxy in front of the SQS stand-in that makes one queue's SendMessage fail, the
 * way real SQS can (a 5xx, or no answer at all), for a real process whose SDK points at it
 * (AWS_ENDPOINT_URL_SQS). The SDK speaks AWS JSON 1.0 to SQS: the operation is the
 * `x-amz-target` header, the queue is `QueueUrl` in the JSON body. Every other call passes through.
 */
export type SendFault = 'none' | 'fail' | 'hold';

export interface SqsFaultProxy {
  url: string;
  /** `fail`: HTTP 500 InternalError; `hold`: the request is read and never answered. */
  setFault(fault: SendFault): void;
  /** SendMessage calls to the target queue the proxy failed or held. */
  faulted(): number;
  /** SendMessage calls to the target queue it passed to the stand-in. */
  passed(): number;
  stop(): Promise<void>;
}

export async function startSqsFaultProxy(options: { target: string; queueUrl: string }): Promise<SqsFaultProxy> {
  const upstream = new URL(options.target);
  let fault: SendFault = 'none';
  let faulted = 0;
  let passed = 0;
  const sockets = new Set<Socket>();

  const forward = (req: IncomingMessage, raw: Buffer, res: ServerResponse) => {
    const out = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on('error', () => res.destroy());
    out.end(raw);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const operation = String(req.headers['x-amz-target'] ?? '');
      const queueUrl = operation === 'AmazonSQS.SendMessage' ? (JSON.parse(raw.toString('utf8')) as { QueueUrl?: string }).QueueUrl : undefined;
      if (queueUrl !== options.queueUrl) return forward(req, raw, res);
      if (fault === 'none') {
        passed++;
        return forward(req, raw, res);
      }
      faulted++;
      if (fault === 'hold') return;
      res.writeHead(500, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(JSON.stringify({ __type: 'com.amazonaws.sqs#InternalError', message: 'fault injected by the test proxy' }));
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    setFault: (next) => {
      fault = next;
    },
    faulted: () => faulted,
    passed: () => passed,
    stop: () =>
      new Promise<void>((done) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => done());
      }),
  };
}
