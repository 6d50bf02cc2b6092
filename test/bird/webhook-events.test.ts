import { birdBodyToSendBody, birdWebhookAction, messageAction } from '../../src/bird/webhook-events';

const CHANNEL = 'cb4b1ebc-34e6-5a7a-a375-f6f2f131d88f';

/**
 * The conversation object of docs.bird.com's "Events" (conversation.updated payload) and "Update
 * conversation" examples: a contact and an agent (type user), a lastMessage with only a preview.
 * The contact here is a WhatsApp contact (identifierKey phonenumber), as on a WhatsApp channel.
 */
function conversationEvent(event: string, lastSender: string, overrides: Record<string, unknown> = {}) {
  return {
    service: 'conversations',
    event,
    payload: {
      id: 'badbf15c-bad3-4bf3-9223-6b7f414f9770',
      name: '',
      description: '',
      status: 'active',
      visibility: 'private',
      accessibility: 'invite-only',
      featuredParticipants: [
        {
          id: '7dadb14e-91bb-4eb7-8b9e-7827dd74bf70',
          type: 'contact',
          status: 'active',
          displayName: 'Jane Doe',
          avatarUrl: '',
          contact: { identifierKey: 'phonenumber', identifierValue: '+31612345678', platformAddress: '+31612345678' },
        },
        { id: '5795352d-f111-407b-be33-c9db94e4a666', type: 'user', status: 'active', displayName: 'John Smith', avatarUrl: '' },
      ],
      activeParticipantCount: 2,
      pendingParticipantCount: 0,
      channelId: CHANNEL,
      lastMessage: {
        id: 'd578f436-b3b7-49e6-95c2-24b77bb4e7ce',
        type: 'text',
        preview: { text: 'Hey, listen!' },
        status: 'delivered',
        sender: { id: '5795352d-f111-407b-be33-c9db94e4a666', type: lastSender, displayName: 'John Smith' },
      },
      ...overrides,
    },
  };
}

/** The conversation message object of "Get/Update conversation message" (sender, recipients, body). */
function message(senderType: string, body: Record<string, unknown>, overrides: Record<string, unknown> = {}) {
  return {
    id: 'aef328e7-6282-4268-a35b-4e5fd9033d2d',
    conversationId: '0c63be07-3e97-42a3-900a-47e538032b73',
    reference: 'my-own-business-logic-id-12345',
    sender: { id: 'cb22b001-6226-4d7c-acdd-7414b2bcdbaf', displayName: 'AI Employee', type: senderType, status: 'active' },
    recipients: [{ type: 'to', id: '7dadb14e', identifierKey: 'phonenumber', identifierValue: '+31612345678', platformAddress: '+31612345678' }],
    draft: false,
    status: 'accepted',
    source: 'conversations',
    body,
    createdAt: '2024-01-01T00:00:00.123Z',
    updatedAt: '2024-01-01T00:00:00.123Z',
    ...overrides,
  };
}

const raw = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('birdWebhookAction', () => {
  it.each([
    ['an agent (user) said the last message', conversationEvent('conversation.updated', 'user'), { action: 'fetch', messageId: 'd578f436-b3b7-49e6-95c2-24b77bb4e7ce', conversationId: 'badbf15c-bad3-4bf3-9223-6b7f414f9770', to: '31612345678' }],
    ['the AI bot said it, on a created conversation', conversationEvent('conversation.created', 'bot'), { action: 'fetch', messageId: 'd578f436-b3b7-49e6-95c2-24b77bb4e7ce', conversationId: 'badbf15c-bad3-4bf3-9223-6b7f414f9770', to: '31612345678' }],
    ['a flow said it', conversationEvent('conversation.updated', 'flow'), expect.objectContaining({ action: 'fetch' })],
    ['the contact said it (what the gateway posted)', conversationEvent('conversation.updated', 'contact'), { action: 'ignore', reason: 'from_contact' }],
    ['another channel of the workspace', conversationEvent('conversation.updated', 'bot', { channelId: 'another' }), { action: 'ignore', reason: 'other_channel' }],
    ['no last message', conversationEvent('conversation.updated', 'bot', { lastMessage: null }), { action: 'ignore', reason: 'no_message' }],
    ['a contact Bird knows only by a Facebook id', conversationEvent('conversation.updated', 'bot', {
      featuredParticipants: [{ id: 'p', type: 'contact', contact: { identifierKey: 'facebookid-509207435603226', identifierValue: '27612960145016998' } }],
    }), { action: 'ignore', reason: 'no_contact' }],
    ['conversation.deleted', conversationEvent('conversation.deleted', 'bot'), { action: 'ignore', reason: 'other_event' }],
    ['another service (channels)', { service: 'channels', event: 'whatsapp.inbound', payload: {} }, { action: 'ignore', reason: 'other_service' }],
  ])('%s', (_name, event, expected) => {
    expect(birdWebhookAction(raw(event), CHANNEL)).toEqual(expected);
  });

  it('a body that is not JSON is ignored', () => {
    expect(birdWebhookAction(Buffer.from('not json'), CHANNEL)).toEqual({ action: 'ignore', reason: 'not_json' });
  });

  it('a message event carries the whole message: sent as it is', () => {
    const said = message('bot', { type: 'text', text: { text: 'Hello from the AI' } });
    expect(birdWebhookAction(raw({ service: 'conversations', event: 'conversation.message.created', payload: said }), CHANNEL, Date.parse('2024-01-01T01:00:00Z'))).toEqual({
      action: 'send',
      messageId: said.id,
      conversationId: said.conversationId,
      to: '31612345678',
      message: said,
    });
  });
});

describe('messageAction (a fetched message)', () => {
  const NOW = Date.parse('2024-01-01T12:00:00Z');
  it.each([
    ['an accessKey integration', message('accessKey', { type: 'text', text: { text: 'x' } }), 'send'],
    ['a draft', message('user', { type: 'text', text: { text: 'x' } }, { draft: true }), 'draft'],
    ['from the contact', message('contact', { type: 'text', text: { text: 'x' } }), 'from_contact'],
    ['said 23 hours ago', message('bot', { type: 'text', text: { text: 'x' } }, { createdAt: '2023-12-31T13:00:00Z' }), 'send'],
    ['said 25 hours ago (a conversation updated for another reason)', message('bot', { type: 'text', text: { text: 'x' } }, { createdAt: '2023-12-31T11:00:00Z' }), 'stale_message'],
  ])('%s', (_name, said, expected) => {
    const action = messageAction(said, undefined, NOW);
    expect(action.action === 'send' ? 'send' : action.action === 'ignore' ? action.reason : action.action).toBe(expected);
  });

  it('takes the contact from the conversation when the message lists no recipients', () => {
    expect(messageAction(message('bot', { type: 'text', text: { text: 'x' } }, { recipients: [] }), '4915112345678', NOW)).toEqual(
      expect.objectContaining({ action: 'send', to: '4915112345678' }),
    );
  });
});

describe('birdBodyToSendBody (Channels API message types → Meta send bodies)', () => {
  it.each([
    ['text', { type: 'text', text: { text: 'Hi there' } }, { type: 'text', text: { body: 'Hi there' } }],
    ['image with caption', { type: 'image', image: { images: [{ mediaUrl: 'https://cdn.example/a.png', altText: 'a' }], text: 'look' } }, { type: 'image', image: { link: 'https://cdn.example/a.png', caption: 'look' } }],
    ['pdf file', { type: 'file', file: { files: [{ mediaUrl: 'https://cdn.example/a.pdf', contentType: 'application/pdf', filename: 'a.pdf' }] } }, { type: 'document', document: { link: 'https://cdn.example/a.pdf', filename: 'a.pdf' } }],
    ['audio file', { type: 'file', file: { files: [{ mediaUrl: 'https://cdn.example/a.ogg', contentType: 'audio/ogg', filename: 'a.ogg' }], text: 'no caption on audio' } }, { type: 'audio', audio: { link: 'https://cdn.example/a.ogg' } }],
    ['video file', { type: 'file', file: { files: [{ mediaUrl: 'https://cdn.example/a.mp4', contentType: 'video/mp4' }], text: 'clip' } }, { type: 'video', video: { link: 'https://cdn.example/a.mp4', caption: 'clip' } }],
    ['location', { type: 'location', location: { coordinates: { latitude: 52.37, longitude: 4.89 }, location: { label: 'Office', address: 'Dam 1' } } }, { type: 'location', location: { latitude: 52.37, longitude: 4.89, name: 'Office', address: 'Dam 1' } }],
    ['an empty text', { type: 'text', text: { text: '' } }, undefined],
    ['a carousel', { type: 'carousel', carousel: { items: [] } }, undefined],
  ])('%s', (_name, body, expected) => {
    expect(birdBodyToSendBody(message('bot', body))).toEqual(expected);
  });
});
