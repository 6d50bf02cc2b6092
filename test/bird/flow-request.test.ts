import { createHmac } from 'node:crypto';
import { buildFlowBody, encodeFlowBody, signFlowBody } from '../../src/bird';
import type { BirdTarget } from '../../src/lines/line';
import { envelopeToEvents } from '../../src/meta/envelope';
import { webhookFixtures } from '../support/fixtures';
import { RECEIVED_AT, deliveryOf, fixtureEvent, mediaFor } from './events';

const target: BirdTarget = { transport: 'flow', flowUrl: 'https://flows.example/hook', flowSecret: 's3cret' };

describe('buildFlowBody', () => {
  it('carries a text message with its reference, line, contact, time and the raw Meta object', () => {
    const event = fixtureEvent('message-text');
    const body = buildFlowBody(deliveryOf(event, target));
    expect(body).toMatchObject({
      reference: event.key,
      kind: 'message',
      field: 'messages',
      line: { lineId: 'demo-line', phoneNumberId: event.phoneNumberId },
      contact: event.contact,
      receivedAt: RECEIVED_AT,
      message: { id: event.message!.id, type: 'text', text: event.message!.text },
    });
    expect(body.message!.text).toEqual(expect.any(String));
    expect(body.raw).toBe(event.raw);
    expect(body.message!.media).toBeUndefined();
  });

  it('carries the presigned media URL, checksum, size and S3 key, with the caption as text', () => {
    const event = fixtureEvent('message-document');
    const media = mediaFor(event);
    const body = buildFlowBody(deliveryOf(event, target, media));
    expect(body.message).toMatchObject({
      type: 'document',
      text: 'my receipt',
      media: {
        kind: 'document',
        url: media.url,
        mimeType: 'application/pdf',
        sha256: media.sha256,
        size: media.size,
        s3Key: media.s3Key,
        filename: 'receipt.pdf',
        caption: 'my receipt',
      },
    });
  });

  it('a file that could not be fetched for good: no URL, the media error named, the caption still the text', () => {
    const event = fixtureEvent('message-document');
    const body = buildFlowBody({ ...deliveryOf(event, target), mediaError: 'media_too_large' });
    expect(body.message).toMatchObject({ type: 'document', text: 'my receipt' });
    expect(body.message?.media).toEqual({ kind: 'document', mimeType: 'application/pdf', filename: 'receipt.pdf', caption: 'my receipt', error: 'media_too_large' });
  });

  it('gives a status its status block and a null contact rather than none', () => {
    const event = fixtureEvent('status-failed');
    const body = buildFlowBody(deliveryOf(event, target));
    expect(body.kind).toBe('status');
    expect(body.status).toEqual(event.status);
    expect(body.message).toBeUndefined();
    expect(JSON.parse(encodeFlowBody(body).toString('utf8'))).toHaveProperty('contact');
  });

  it('for every event of every fixture: reference is the key, contact is present, raw survives JSON', () => {
    for (const fixture of webhookFixtures()) {
      for (const event of envelopeToEvents(fixture.json)) {
        const wire = JSON.parse(encodeFlowBody(buildFlowBody(deliveryOf(event, target))).toString('utf8'));
        expect(wire.reference).toBe(event.key);
        expect(wire.kind).toBe(event.kind);
        expect(wire.line).toMatchObject({ lineId: 'demo-line' });
        expect(wire.contact === null || typeof wire.contact === 'object').toBe(true);
        expect(wire.raw).toEqual(JSON.parse(JSON.stringify(event.raw ?? null)));
        if (event.kind === 'message') expect(wire.message.type).toBe(event.message!.type);
      }
    }
  });
});

describe('signFlowBody', () => {
  it('is the lowercase hex HMAC-SHA256 of the exact bytes, and changes when one byte does', () => {
    const raw = encodeFlowBody(buildFlowBody(deliveryOf(fixtureEvent('message-text'), target)));
    const expected = createHmac('sha256', 's3cret').update(raw).digest('hex');
    expect(signFlowBody('s3cret', raw)).toBe(`sha256=${expected}`);
    expect(signFlowBody('s3cret', raw)).toMatch(/^sha256=[0-9a-f]{64}$/);
    const tampered = Buffer.from(raw);
    const at = tampered.length - 2;
    tampered.writeUInt8(tampered.readUInt8(at) ^ 1, at);
    expect(signFlowBody('s3cret', tampered)).not.toBe(`sha256=${expected}`);
    expect(signFlowBody('other', raw)).not.toBe(`sha256=${expected}`);
  });

  it('signs non-ASCII text as its UTF-8 bytes', () => {
    const raw = Buffer.from(JSON.stringify({ text: 'olá 👋' }), 'utf8');
    expect(signFlowBody('k', raw)).toBe(`sha256=${createHmac('sha256', 'k').update(raw).digest('hex')}`);
  });
});
