import { createHash } from 'node:crypto';
import { generatedBytes, startGraphStandIn, type GraphStandIn } from '../../src/local/graph-standin';

const auth = { authorization: 'Bearer some-token' };

async function lookup(standIn: GraphStandIn, id: string, headers: Record<string, string> = auth) {
  const response = await fetch(`${standIn.baseUrl}/v25.0/${id}`, { headers });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

describe('Graph stand-in', () => {
  let standIn: GraphStandIn;
  beforeAll(async () => {
    standIn = await startGraphStandIn({ serveAnyMediaId: true, downloadUrlTtlMs: 1500 });
  });
  afterAll(async () => standIn.stop());

  it("answers Graph's media shape, and the URL serves bytes matching sha256 and file_size", async () => {
    const { status, body } = await lookup(standIn, '1003383421387256');
    expect(status).toBe(200);
    expect(body).toMatchObject({ messaging_product: 'whatsapp', id: '1003383421387256', mime_type: 'application/octet-stream' });
    expect(typeof body.file_size).toBe('string');
    const download = await fetch(body.url, { headers: auth });
    const bytes = Buffer.from(await download.arrayBuffer());
    expect(bytes.length).toBe(Number(body.file_size));
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(body.sha256);
    // Deterministic: another instance serves the same bytes for the same id.
    const other = await startGraphStandIn({ serveAnyMediaId: true });
    try {
      expect((await lookup(other, '1003383421387256')).body.sha256).toBe(body.sha256);
    } finally {
      await other.stop();
    }
  });

  it('serves small valid files for ids that hint at a type', async () => {
    const png = await lookup(standIn, 'sample-png-1');
    expect(png.body.mime_type).toBe('image/png');
    const bytes = Buffer.from(await (await fetch(png.body.url, { headers: auth })).arrayBuffer());
    expect(bytes.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    const pdf = await lookup(standIn, 'document-7');
    const text = Buffer.from(await (await fetch(pdf.body.url, { headers: auth })).arrayBuffer()).toString('latin1');
    expect(text.startsWith('%PDF-1.4')).toBe(true);
    expect(text.trimEnd().endsWith('%%EOF')).toBe(true);
  });

  it("requires the bearer token, answering Graph's OAuthException", async () => {
    const { status, body } = await lookup(standIn, '1', {});
    expect(status).toBe(401);
    expect(body.error).toMatchObject({ type: 'OAuthException', code: 190 });
    const url = (await lookup(standIn, '2')).body.url as string;
    expect((await fetch(url)).status).toBe(401);
    expect(standIn.requests().slice(-2).map((r) => [r.kind, r.authorization])).toEqual([
      ['lookup', true],
      ['download', false],
    ]);
  });

  it('answers 404 to a tampered or expired download URL', async () => {
    const url = new URL((await lookup(standIn, '3')).body.url as string);
    const tampered = new URL(url);
    tampered.searchParams.set('mid', '4');
    expect((await fetch(tampered, { headers: auth })).status).toBe(404);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    expect((await fetch(url, { headers: auth })).status).toBe(404);
  });

  it("answers Graph's 'does not exist' error for unknown ids unless serveAnyMediaId", async () => {
    const strict = await startGraphStandIn({ token: 't' });
    try {
      const { status, body } = await lookup(strict, '999', { authorization: 'Bearer t' });
      expect(status).toBe(400);
      expect(body.error).toMatchObject({ code: 100, error_subcode: 33 });
      expect(body.error.message).toMatch(/^Unsupported get request\. Object .*999.* does not exist/);
      expect((await lookup(strict, '999', { authorization: 'Bearer wrong' })).status).toBe(401);
    } finally {
      await strict.stop();
    }
  });

  it('generates deterministic, non-repeating bytes of the exact size', () => {
    const chunks = [...generatedBytes(3 * 1024 * 1024 + 5, 'seed')];
    const total = Buffer.concat(chunks);
    expect(total.length).toBe(3 * 1024 * 1024 + 5);
    expect(Buffer.concat([...generatedBytes(3 * 1024 * 1024 + 5, 'seed')]).equals(total)).toBe(true);
    expect(Buffer.concat([...generatedBytes(1024, 'other')]).equals(total.subarray(0, 1024))).toBe(false);
    // 1 MiB apart the pattern repeats, but the chunk stamps keep the bytes distinct.
    expect(total.subarray(0, 65536).equals(total.subarray(1024 * 1024, 1024 * 1024 + 65536))).toBe(false);
  });
});
