import { buildCreateConversationMessage } from '../../src/bird/conversations-request';
import { buildFlowBody } from '../../src/bird/flow-request';
import type { BirdDelivery } from '../../src/bird/delivery';
import { envelopeToEvents } from '../../src/meta/envelope';
import { loadFixture } from '../support/fixtures';

const conversation = { contactId: 'ct_abc', windowOpenUntil: '2026-12-05T10:00:00.000Z', paused: { until: null, by: 'meta_handover' as const } };
const delivery = (extra: Partial<BirdDelivery> = {}): BirdDelivery => ({
  lineId: 'line-doc',
  target: { transport: 'flow', flowUrl: 'https://example.invalid/flow', flowSecret: 's' },
  event: envelopeToEvents(loadFixture('message-text.json').json)[0]!,
  receivedAt: '2026-12-04T10:00:00.000Z',
  ...extra,
});

describe('Bird knows the conversation', () => {
  it('the flow body carries `conversation` as the worker computed it', () => {
    expect(buildFlowBody(delivery({ conversation })).conversation).toEqual(conversation);
    expect('conversation' in buildFlowBody(delivery())).toBe(false);
  });

  it('the conversations transport sends the same as message metadata', () => {
    const message = buildCreateConversationMessage(delivery({ conversation }), { type: 'text', text: { text: 'hi' } }, '+16505551234');
    expect(JSON.parse(message.meta!.extraInformation.conversation)).toEqual(conversation);
    expect(buildCreateConversationMessage(delivery(), { type: 'text', text: { text: 'hi' } }, '+16505551234').meta).toBeUndefined();
  });
});
