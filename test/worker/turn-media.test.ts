import type { FlowBody } from '../../src/bird/flow-request';
import { bufferedBody, withMediaUrls } from '../../src/worker/turns/turn-message';

/** Defect 2: a turn's buffered messages keep their media by S3 key; the turn is signed when delivered. */
const body = (media?: Record<string, unknown>): FlowBody =>
  ({
    reference: 'msg#1#wamid.A',
    kind: 'message',
    field: 'messages',
    line: { lineId: 'line-doc', phoneNumberId: '1' },
    contact: null,
    receivedAt: '2026-12-01T10:00:00Z',
    message: { id: 'wamid.A', type: media ? 'image' : 'text', ...(media ? { media } : { text: 'hi' }) },
    raw: {},
  }) as FlowBody;

describe('turn media', () => {
  const stored = { kind: 'image', url: 'https://s3/media/k.jpg?X-Amz-Date=20261201T100000Z&X-Amz-Signature=old', s3Key: 'media/k.jpg', sha256: 'ab', size: 3, mimeType: 'image/jpeg' };

  it('buffers a message without its presigned URL, keeping the S3 key and the rest', () => {
    const kept = bufferedBody(body(stored)) as FlowBody;
    expect(kept.message?.media).toEqual({ kind: 'image', s3Key: 'media/k.jpg', sha256: 'ab', size: 3, mimeType: 'image/jpeg' });
    expect(JSON.stringify(kept)).not.toContain('X-Amz-Signature');
    // Text, and a file that could not be fetched (no URL to begin with), are kept as they are.
    expect(bufferedBody(body())).toEqual(body());
    expect(bufferedBody(body({ kind: 'image', error: 'media_not_found' }))).toEqual(body({ kind: 'image', error: 'media_not_found' }));
  });

  it('signs each stored file of a turn now, from its S3 key, even one buffered with a URL before the fix', async () => {
    const signed: string[] = [];
    const presign = async (s3Key: string) => {
      signed.push(s3Key);
      return `https://s3/${s3Key}?X-Amz-Signature=fresh`;
    };
    const messages = await withMediaUrls([bufferedBody(body(stored)), body(), body(stored)], presign);
    expect(signed).toEqual(['media/k.jpg', 'media/k.jpg']);
    expect(messages.map((m) => (m as FlowBody).message?.media && 'url' in (m as FlowBody).message!.media! ? ((m as FlowBody).message!.media as { url: string }).url : undefined)).toEqual([
      'https://s3/media/k.jpg?X-Amz-Signature=fresh',
      undefined,
      'https://s3/media/k.jpg?X-Amz-Signature=fresh',
    ]);
  });
});
