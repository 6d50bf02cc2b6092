import { buildCreateConversationMessage } from '../../src/bird/conversations-request';
import { buildFlowBody } from '../../src/bird/flow-request';
import type { BirdDelivery } from '../../src/bird/delivery';
import { envelopeToEvents } from '../../src/meta/envelope';
import { loadFixture } from '../support/fixtures';
import { presenceTarget, TURN_OBJECT, turnEvents } from '../../src/worker/turns/turn-message';

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

  it('a group message’s body names its group, and a turn of a group is the group’s (no read receipt, the group’s state)', () => {
    const payload = loadFixture('message-text.json').json as { entry: Array<{ changes: Array<{ value: { messages: Array<Record<string, unknown>> } }> }> };
    payload.entry[0]!.changes[0]!.value.messages[0]!.group_id = 'G-turn';
    const body = buildFlowBody(delivery({ event: envelopeToEvents(payload)[0]! }));
    expect(body.groupId).toBe('G-turn');
    const [turn] = turnEvents({ object: TURN_OBJECT, turn: { id: 't1', key: 'turn#line-doc#t1', lineId: 'line-doc', phoneNumberId: '1', contact: body.contact, cut: 'quiet', messages: [body] } })!;
    expect(turn!.groupId).toBe('G-turn');
    expect(presenceTarget(turn!).groupId).toBe('G-turn');
  });
});
