import { createHash } from 'node:crypto';
import { ConfigError, PermanentError, RetryableError } from '../../src/errors';
import { AllowedHosts } from '../../src/media/allowed-hosts';
import { classifyMediaHttpFailure } from '../../src/media/graph-media-client';
import { MEDIA_SIZE_CAPS, contactMediaPrefix, contactMediaPrefixOfDigest, extensionFor, mediaObjectKey, parseFileSize, sha256ToHex } from '../../src/media/media-object';
import { contactDigest, wamidDigest } from '../../src/privacy/pseudonyms';

describe('mediaObjectKey', () => {
  const wamid = 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQ=';
  it('is media/<line>/<contact digest>/<utc yyyy/mm/dd>/<wamid digest>/<media id>.<ext>, dated in UTC', () => {
    // 23:30 in New York on 5 March is 6 March in UTC.
    const receivedAt = new Date('2026-03-05T23:30:00-05:00');
    expect(mediaObjectKey({ lineId: 'line-1', contact: '16503879439', wamid, mediaId: '1003383421387256', receivedAt, mimeType: 'image/jpeg' })).toBe(
      `media/line-1/${contactDigest('16503879439')}/2026/03/06/${wamidDigest(wamid)}/1003383421387256.jpg`,
    );
  });

  it('holds neither the number nor the wamid, and is the same for the same event', () => {
    const input = { lineId: 'line-1', contact: '+1 650 387 9439', wamid, mediaId: 'm1', receivedAt: new Date(0), mimeType: 'audio/ogg' };
    const key = mediaObjectKey(input);
    expect(key).not.toContain('16503879439');
    expect(key).not.toContain('HBgLMTY1MDM4Nzk0MzkVAgASGBQ');
    expect(mediaObjectKey({ ...input })).toBe(key);
  });

  it('puts every file of one contact on one line under one prefix, and no other contact under it', () => {
    const at = new Date('2026-01-01T00:00:00Z');
    const a1 = mediaObjectKey({ lineId: 'l', contact: '111122223333', wamid: 'w1', mediaId: 'm1', receivedAt: at, mimeType: undefined });
    const a2 = mediaObjectKey({ lineId: 'l', contact: '+111122223333', wamid: 'w2', mediaId: 'm2', receivedAt: new Date('2027-05-05T00:00:00Z'), mimeType: undefined });
    const b = mediaObjectKey({ lineId: 'l', contact: '111122223334', wamid: 'w3', mediaId: 'm3', receivedAt: at, mimeType: undefined });
    const other = mediaObjectKey({ lineId: 'l2', contact: '111122223333', wamid: 'w4', mediaId: 'm4', receivedAt: at, mimeType: undefined });
    const prefix = contactMediaPrefix('l', '111122223333');
    expect(prefix).toBe(contactMediaPrefixOfDigest('l', contactDigest('111122223333')));
    expect(a1.startsWith(prefix) && a2.startsWith(prefix)).toBe(true);
    expect(b.startsWith(prefix) || other.startsWith(prefix)).toBe(false);
  });

  it('keeps ids from adding path segments', () => {
    const key = mediaObjectKey({ lineId: '../x', contact: 'c', wamid: 'a/b', mediaId: 'm?1', receivedAt: new Date(0), mimeType: undefined });
    expect(key).toBe(`media/.._x/${contactDigest('c')}/1970/01/01/${wamidDigest('a/b')}/m_1.bin`);
    expect(key.split('/')).toHaveLength(8);
    expect(() => mediaObjectKey({ lineId: '..', contact: 'c', wamid: 'w', mediaId: 'm', receivedAt: new Date(0), mimeType: undefined })).toThrow(/lineId/);
    expect(() => mediaObjectKey({ lineId: 'l', contact: 'c', wamid: 'w', mediaId: 'm', receivedAt: new Date('nope'), mimeType: undefined })).toThrow(/receivedAt/);
  });
});

describe('extensionFor', () => {
  it.each([
    ['image/jpeg', 'jpg'],
    ['image/png', 'png'],
    ['image/webp', 'webp'],
    ['audio/ogg; codecs=opus', 'ogg'],
    ['AUDIO/MPEG', 'mp3'],
    ['video/mp4', 'mp4'],
    ['application/pdf', 'pdf'],
    ['application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', 'xlsx'],
    ['application/x-unknown', 'bin'],
    [undefined, 'bin'],
  ])('%s → %s', (mime, ext) => expect(extensionFor(mime)).toBe(ext));
});

describe('sha256ToHex', () => {
  const digest = createHash('sha256').update('media bytes').digest();
  it.each([
    ['hex', digest.toString('hex')],
    ['upper-case hex', digest.toString('hex').toUpperCase()],
    ['base64', digest.toString('base64')],
    ['base64url', digest.toString('base64url')],
    ['base64 with spaces around', ` ${digest.toString('base64')} `],
  ])('reads %s', (_name, value) => expect(sha256ToHex(value)).toBe(digest.toString('hex')));

  it.each([[undefined], [''], ['<HASH>'], [digest.subarray(0, 31).toString('base64')], [digest.toString('hex').slice(1)]])(
    'treats %p as absent',
    (value) => expect(sha256ToHex(value)).toBeUndefined(),
  );
});

describe('parseFileSize and caps', () => {
  it.each([
    ['303833', 303833],
    [303833, 303833],
    ['', undefined],
    ['12abc', undefined],
    [-1, undefined],
    [undefined, undefined],
  ])('%p → %p', (value, expected) => expect(parseFileSize(value as string | number | undefined)).toBe(expected));

  it('uses binary megabytes', () => {
    expect(MEDIA_SIZE_CAPS).toEqual({
      image: 5 * 1048576,
      audio: 16 * 1048576,
      video: 16 * 1048576,
      document: 100 * 1048576,
      sticker: 500 * 1024,
    });
  });
});

describe('AllowedHosts', () => {
  const hosts = new AllowedHosts(['lookaside.fbsbx.com', '*.fbcdn.net', 'Graph.Facebook.com']);
  it.each([
    ['lookaside.fbsbx.com', true],
    ['LOOKASIDE.FBSBX.COM.', true],
    ['graph.facebook.com', true],
    ['scontent.xx.fbcdn.net', true],
    ['fbcdn.net', false],
    ['evilfbcdn.net', false],
    ['fbcdn.net.evil.com', false],
    ['lookaside.fbsbx.com.evil.com', false],
    ['x.lookaside.fbsbx.com', false],
    ['', false],
  ])('%s → %s', (host, allowed) => expect(hosts.allows(host)).toBe(allowed));

  it.each([['*'], ['*.com'], ['http://graph.facebook.com'], ['graph.facebook.com/path'], ['*.*.fbcdn.net']])(
    'refuses the pattern %s at start',
    (pattern) => expect(() => new AllowedHosts([pattern])).toThrow(ConfigError),
  );
});

describe('classifyMediaHttpFailure', () => {
  const graphError = (code: number, subcode?: number) => ({ error: { message: 'x', code, error_subcode: subcode } });
  it.each([
    ['lookup', 401, graphError(190), PermanentError, 'media_token_rejected'],
    ['download', 403, undefined, PermanentError, 'media_token_rejected'],
    ['lookup', 400, graphError(190), PermanentError, 'media_token_rejected'],
    ['lookup', 400, graphError(100, 33), PermanentError, 'media_expired'],
    ['lookup', 404, graphError(100, 33), PermanentError, 'media_expired'],
    ['download', 404, undefined, PermanentError, 'media_expired'],
    ['lookup', 400, graphError(4), RetryableError, 'media_rate_limited'],
    ['lookup', 429, undefined, RetryableError, 'media_rate_limited'],
    ['lookup', 500, graphError(2), RetryableError, 'media_unavailable'],
    ['download', 503, 'not json', RetryableError, 'media_unavailable'],
    ['lookup', 400, graphError(131009), PermanentError, 'media_rejected'],
  ] as const)('%s HTTP %i %j → %p %s', (stage, status, body, type, reason) => {
    const error = classifyMediaHttpFailure(stage, status, body);
    expect(error).toBeInstanceOf(type);
    expect(error.reason).toBe(reason);
  });
});
