import {
  buildConversationMessageBody,
  buildCreateConversationMessage,
  contactPhoneNumber,
} from '../../src/bird';
import { conversationRefOf, firstConversationOf } from '../../src/bird/conversations-request';
import type { BirdTarget } from '../../src/lines/line';
import { deliveryOf, fixtureEvent, mediaFor } from './events';

const target: BirdTarget = { transport: 'conversations', workspaceId: 'ws', channelId: 'ch', accessKey: 'k' };

function bodyOf(fixture: string, withMedia = false) {
  const event = fixtureEvent(fixture);
  return buildConversationMessageBody(deliveryOf(event, target, withMedia ? mediaFor(event) : undefined));
}

describe('buildConversationMessageBody', () => {
  it('maps each inbound message to Bird’s documented body type', () => {
    const image = fixtureEvent('message-image');
    const document = fixtureEvent('message-document');
    const cases: Array<[string, boolean, unknown]> = [
      ['message-text', false, { type: 'text', text: { text: fixtureEvent('message-text').message!.text } }],
      ['message-image', true, { type: 'image', image: { images: [{ mediaUrl: mediaFor(image).url }], text: image.message!.media!.caption } }],
      ['message-sticker', true, { type: 'image', image: { images: [{ mediaUrl: mediaFor(fixtureEvent('message-sticker')).url }] } }],
      [
        'message-document',
        true,
        { type: 'file', file: { files: [{ mediaUrl: mediaFor(document).url, contentType: 'application/pdf', filename: 'receipt.pdf' }], text: 'my receipt' } },
      ],
      [
        'message-location',
        false,
        {
          type: 'location',
          location: {
            coordinates: { latitude: 37.44221496582, longitude: -122.16165924072 },
            location: { address: '101 Forest Ave, Palo Alto, CA 94301', label: 'Philz Coffee' },
          },
        },
      ],
      ['message-reaction', false, { type: 'text', text: { text: fixtureEvent('message-reaction').message!.text } }],
      ['message-reaction-removed', false, { type: 'text', text: { text: '[reaction]' } }],
    ];
    for (const [fixture, withMedia, expected] of cases) {
      expect([fixture, JSON.parse(JSON.stringify(bodyOf(fixture, withMedia)))]).toEqual([fixture, expected]);
    }
  });

  it('tells a media message whose bytes were not fetched as text, so the AI still hears of it', () => {
    const body = bodyOf('message-video', false);
    expect(body?.type).toBe('text');
    expect(body && body.type === 'text' && body.text.text).toMatch(/\S/);
  });

  it('names a file that could not be fetched for good after the caption, so the AI can ask for it again', () => {
    const event = fixtureEvent('message-document');
    const body = buildConversationMessageBody({ ...deliveryOf(event, target), mediaError: 'media_expired' });
    expect(body).toEqual({ type: 'text', text: { text: 'my receipt [document not received: media_expired]' } });
  });

  it('has nothing to post for statuses, account updates and errors', () => {
    expect(bodyOf('status-read')).toBeUndefined();
    expect(bodyOf('account-update-violation')).toBeUndefined();
    expect(bodyOf('value-errors-rate-limit')).toBeUndefined();
  });
});

describe('contactPhoneNumber', () => {
  it('is +E.164 from wa_id, and absent when the user is known only by a BSUID', () => {
    expect(contactPhoneNumber(fixtureEvent('message-text'))).toBe('+16505551234');
    expect(contactPhoneNumber(fixtureEvent('bsuid-message-text-no-from'))).toBeUndefined();
  });
});

describe('buildCreateConversationMessage', () => {
  it('posts as the contact with the event key as reference', () => {
    const event = fixtureEvent('message-text');
    const body = { type: 'text' as const, text: { text: 'hi' } };
    expect(buildCreateConversationMessage(deliveryOf(event, target), body, '+16505551234', 'p-1')).toEqual({
      participantType: 'contact',
      participantId: 'p-1',
      participantContactIdentifierKey: 'phonenumber',
      participantContactIdentifierValue: '+16505551234',
      addMissingParticipants: true,
      reference: event.key,
      body,
    });
  });
});

describe('conversation answers', () => {
  it('read the conversation id and the contact participant id, tolerating odd shapes', () => {
    const conversation = {
      id: 'c-1',
      featuredParticipants: [
        { id: 'ak-1', type: 'accessKey' },
        { id: 'p-1', type: 'contact' },
      ],
    };
    expect(firstConversationOf({ results: [conversation] })).toEqual({ conversationId: 'c-1', contactParticipantId: 'p-1' });
    expect(firstConversationOf({ results: [] })).toBeUndefined();
    expect(firstConversationOf(undefined)).toBeUndefined();
    expect(conversationRefOf({ id: 'c-2' })).toEqual({ conversationId: 'c-2', contactParticipantId: undefined });
    expect(conversationRefOf({ featuredParticipants: [] })).toBeUndefined();
  });
});
