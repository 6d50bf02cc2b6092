import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { CONNECT_TIMEOUT_CODE, KeepAliveHttpTransport, headerValue } from '../../src/http/keep-alive-transport';
import { GraphSendClient } from '../../src/outbound/graph-send-client';

let server: http.Server;
let base: string;
let connections = 0;
const transport = new KeepAliveHttpTransport();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.url === '/slow') {
        const late = setTimeout(() => res.end('late'), 2000);
        return void res.on('close', () => clearTimeout(late));
      }
      if (req.url === '/redirect') {
        res.writeHead(302, { location: `${base}/echo` });
        return void res.end();
      }
      if (req.url === '/error') {
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
        return void res.end(JSON.stringify({ error: { code: 130429, message: 'slow down' } }));
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, body, authorization: req.headers.authorization ?? null }));
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  transport.destroy();
  server.closeAllConnections();
  await new Promise((done) => server.close(done));
});
beforeEach(() => {
  connections = 0;
});

describe('KeepAliveHttpTransport', () => {
  it('posts the body with its headers and gives back status and text', async () => {
    const answer = await transport.exchange({ method: 'POST', url: `${base}/echo`, headers: { authorization: 'Bearer t', 'content-type': 'application/json' }, body: '{"é":1}' });
    expect(answer).toMatchObject({ status: 200, ok: true });
    expect(JSON.parse(answer.text)).toEqual({ method: 'POST', body: '{"é":1}', authorization: 'Bearer t' });
  });

  it('reuses one socket for calls in sequence, error answers included (their bodies are read to the end)', async () => {
    for (let i = 0; i < 5; i++) {
      const answer = await transport.exchange({ method: 'POST', url: `${base}/${i % 2 ? 'error' : 'echo'}`, headers: {}, body: 'x' });
      expect(answer.status).toBe(i % 2 ? 429 : 200);
    }
    expect(connections).toBeLessThanOrEqual(1);
  });

  it("keeps an error's body and headers for the caller to parse", async () => {
    const answer = await transport.exchange({ method: 'GET', url: `${base}/error`, headers: {} });
    expect(answer.ok).toBe(false);
    expect(JSON.parse(answer.text)).toEqual({ error: { code: 130429, message: 'slow down' } });
    expect(headerValue(answer.headers, 'Retry-After')).toBe('7');
    expect(headerValue(answer.headers, 'x-absent')).toBeNull();
  });

  it('never follows a redirect: the 3xx is the answer', async () => {
    const answer = await transport.exchange({ method: 'POST', url: `${base}/redirect`, headers: { authorization: 'Bearer secret' }, body: 'x' });
    expect(answer.status).toBe(302);
    expect(headerValue(answer.headers, 'location')).toBe(`${base}/echo`);
  });

  it("an abort ends the call at once with the signal's reason (TimeoutError), as fetch does", async () => {
    const started = Date.now();
    const call = transport.exchange({ method: 'POST', url: `${base}/slow`, headers: {}, body: 'x', signal: AbortSignal.timeout(100) });
    await expect(call).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('an already aborted signal sends nothing', async () => {
    const controller = new AbortController();
    controller.abort(new Error('shutdown'));
    await expect(transport.exchange({ method: 'POST', url: `${base}/echo`, headers: {}, body: 'x', signal: controller.signal })).rejects.toThrow('shutdown');
    expect(connections).toBe(0);
  });

  it('a refused connection fails with its code (callers tell "never sent" from it)', async () => {
    const closed = http.createServer();
    await new Promise<void>((done) => closed.listen(0, '127.0.0.1', done));
    const { port } = closed.address() as AddressInfo;
    await new Promise((done) => closed.close(done));
    await expect(transport.exchange({ method: 'POST', url: `http://127.0.0.1:${port}/x`, headers: {}, body: 'x' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('refuses a URL that does not parse or is not http(s)', async () => {
    await expect(transport.exchange({ method: 'GET', url: 'not a url', headers: {} })).rejects.toMatchObject({ code: 'ERR_INVALID_URL' });
    await expect(transport.exchange({ method: 'GET', url: 'ftp://example.com/x', headers: {} })).rejects.toMatchObject({ code: 'ERR_INVALID_URL' });
  });

  it('a connection that never opens (TLS handshake unanswered) ends at the connect timeout, and a Graph send calls it unsent', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => void sockets.push(socket));
    await new Promise<void>((done) => silent.listen(0, '127.0.0.1', done));
    const url = `https://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const impatient = new KeepAliveHttpTransport({ connectTimeoutMs: 150 });
    try {
      const started = Date.now();
      await expect(impatient.exchange({ method: 'POST', url: `${url}/x`, headers: {}, body: 'x', signal: AbortSignal.timeout(5000) })).rejects.toMatchObject({ code: CONNECT_TIMEOUT_CODE });
      expect(Date.now() - started).toBeLessThan(2000);
      const graph = new GraphSendClient({ graphApiBaseUrl: url, graphApiVersion: 'v25.0', timeoutMs: 5000, transport: impatient });
      expect(await graph.send({ phoneNumberId: '1', accessToken: 't', body: { messaging_product: 'whatsapp', to: '2', type: 'text', text: { body: 'hi' } } })).toEqual({ kind: 'unsent', detail: CONNECT_TIMEOUT_CODE });
    } finally {
      impatient.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise((done) => silent.close(done));
    }
  });
});
