import { createServer, Socket } from 'node:net';
import { freePort } from './child';

/** A loopback TCP relay to a stand-in that can be "down" (connections refused at once), as an outage of that service. */
export interface TcpRelay {
  url: string;
  setUp(up: boolean): void;
  stop(): Promise<void>;
}

export async function startTcpRelay(target: string, up = true): Promise<TcpRelay> {
  const { hostname, port: targetPort } = new URL(target);
  const port = await freePort();
  const sockets = new Set<Socket>();
  let open = up;
  const server = createServer((socket) => {
    if (!open) return socket.destroy();
    const upstream = new Socket();
    upstream.connect(Number(targetPort), hostname);
    sockets.add(socket).add(upstream);
    socket.on('close', () => sockets.delete(socket));
    upstream.on('close', () => sockets.delete(upstream));
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
    socket.pipe(upstream).pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${port}`,
    setUp(value) {
      open = value;
      // An outage also cuts the connections the SDK keeps alive.
      if (!value) for (const s of sockets) s.destroy();
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
