import { preparePayload } from '../../src/ingress/queued-payload';
import { bodyBytes, toRecord } from '../../src/archive/archive-record';

/** Bodies that are, and are not, exact as UTF-8 text: both SQS (inline body) and the archive (body vs bodyBase64) decide on it. */
const exact = [Buffer.from('{"entry":[],"t":"héllo 👋"}', 'utf8'), Buffer.from('\ufeff{"entry":[]}', 'utf8')];
const notExact = [
  Buffer.from([0x7b, 0xff, 0x7d]), // a byte UTF-8 never uses
  Buffer.from([0x7b, 0xc3, 0x7d]), // a truncated sequence
  Buffer.from([0x7b, 0xed, 0xa0, 0x80, 0x7d]), // a surrogate encoded as UTF-8 (CESU-8)
  Buffer.from([0x7b, 0xc0, 0xaf, 0x7d]), // an overlong '/'
];

describe('preparePayload', () => {
  it.each(exact.map((b) => [b.toString('hex'), b]))('carries a valid UTF-8 body inline, byte for byte (%s)', (_hex, body) => {
    const prepared = preparePayload({ body, attributes: {} }, 256 * 1024);
    expect(Buffer.from(prepared.inlineBody!, 'utf8').equals(body)).toBe(true);
  });

  it.each(notExact.map((b) => [b.toString('hex'), b]))('sends a body that is not valid UTF-8 by claim check (%s)', (_hex, body) => {
    expect(preparePayload({ body, attributes: {} }, 256 * 1024).inlineBody).toBeUndefined();
  });

  it('sends a body with characters SQS refuses, or too big, by claim check', () => {
    expect(preparePayload({ body: Buffer.from('{"t":"\u0001"}'), attributes: {} }, 256 * 1024).inlineBody).toBeUndefined();
    expect(preparePayload({ body: Buffer.from('{"entry":[]}'), attributes: { bodySha256: 'x'.repeat(64) } }, 40).inlineBody).toBeUndefined();
  });
});

describe('toRecord', () => {
  const entry = (body: Buffer) => ({ receivedAt: '2026-01-01T00:00:00.000Z', requestId: 'r', path: '/webhooks/whatsapp', signature: 'sha256=00', body, contacts: [] });
  it.each([...exact, ...notExact].map((b) => [b.toString('hex'), b]))('keeps the exact bytes (%s)', (_hex, body) => {
    const record = JSON.parse(JSON.stringify(toRecord(entry(body))));
    expect(bodyBytes(record).equals(body)).toBe(true);
  });
  it('writes valid UTF-8 as text and anything else as base64', () => {
    expect(toRecord(entry(exact[0]!)).body).toBe(exact[0]!.toString('utf8'));
    for (const body of notExact) expect(toRecord(entry(body)).bodyBase64).toBe(body.toString('base64'));
  });
});
