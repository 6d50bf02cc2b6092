import { conversationGroupId, inboundRoutes, inLane, inTimestampOrder, sqsGroupId } from '../../src/meta/conversation';
import { envelopeToEvents } from '../../src/meta/envelope';
import type { WhatsAppEvent } from '../../src/meta/event';
import { loadFixture, webhookFixtures } from '../support/fixtures';

/** One change carrying a message and a status of one person, the status earlier in time. */
const MIXED = {
  object: 'whatsapp_business_account',
  entry: [
    {
      id: 'waba',
      changes: [
        {
          field: 'messages',
          value: {
            metadata: { phone_number_id: '1' },
            messages: [{ from: '5', id: 'wamid.M', timestamp: '200', type: 'text', text: { body: 'hi' } }],
            statuses: [{ id: 'wamid.S', status: 'read', timestamp: '100', recipient_id: '5' }],
          },
        },
      ],
    },
  ],
};

describe('conversationGroupId over the fixtures', () => {
  // Expected values read off each file: the first message's from / from_user_id, else the first status's recipient, else entry.id.
  const table: [string, string][] = [
    ['message-text', '106540352242922:16505551234'],
    ['message-image-with-url', '1122334455667:972987654321'],
    ['batch-two-changes-two-texts', 'PHONE_NUMBER_ID:PHONE_NUMBER'],
    // from_user_id only (BSUID rollout)
    ['bsuid-message-text-no-from', '106540352242922:US.13491208655302741918'],
    ['message-button-quick-reply-from-user-id', '1122334455667:US.13491208655302741918'],
    // a message naming nobody: its change's only contact (user_id)
    ['odd-bsuid-only-no-from', 'PHONE_NUMBER_ID:BSUID_123'],
    // statuses: recipient_user_id, else recipient_id (the BSUID first, as for senders)
    ['status-read', '1122334455667:972987654321'],
    ['status-failed', '106540352242922:16505551234'],
    ['bsuid-status-delivered-no-phone', '106540352242922:US.13491208655302741918'],
    ['bsuid-status-delivered-username', '106540352242922:US.13491208655302741918'],
    // a group receipt: the group is the conversation; '<' and '>' are punctuation SQS accepts
    ['status-group-read', '<BUSINESS_PHONE_NUMBER_ID>:fowefinoewcnw'],
    // no message, no status: entry.id (account events carry no phone_number_id either)
    ['account-update-deleted', '102290129340398:102290129340398'],
    ['template-status-approved', '102290129340398:102290129340398'],
    ['odd-account-update-misplaced-field-object', '2949482758682047:2949482758682047'],
    ['value-errors-rate-limit', '106540352242922:102290129340398'],
    ['history-multi-message', '106540352242922:102290129340398'],
  ];
  it.each(table)('%s → %s', (name, group) => {
    expect(conversationGroupId(loadFixture(name).json)).toBe(group);
  });

  it('gives every webhook fixture a group SQS accepts (1–128 printable ASCII characters)', () => {
    for (const fixture of webhookFixtures()) expect(conversationGroupId(fixture.json)).toMatch(/^[\x21-\x7E]{1,128}$/);
  });


  it('takes the first message across entries and changes, before any status', () => {
    const payload = {
      entry: [
        { id: 'waba', changes: [{ field: 'messages', value: { metadata: { phone_number_id: '1' }, statuses: [{ id: 's', status: 'read', recipient_id: '999' }] } }] },
        { id: 'waba', changes: [{ field: 'messages', value: { metadata: { phone_number_id: '2' }, messages: [{ id: 'm', from: '555' }, { id: 'n', from: '666' }] } }] },
      ],
    };
    expect(conversationGroupId(payload)).toBe('2:555');
  });

  it('never throws on what is not an envelope', () => {
    for (const junk of [null, 42, 'x', [], {}, { entry: 'no' }, { entry: [null, { changes: [1] }] }]) {
      expect(conversationGroupId(junk)).toMatch(/^[\x21-\x7E]{1,128}$/);
    }
  });
});

describe('inboundRoutes: statuses in a lane of their own', () => {
  const routesOf = (payload: unknown) => inboundRoutes(payload, envelopeToEvents(payload));
  it("sends a reply's status to a group of its own, never the group of the same person's messages", () => {
    const message = routesOf(loadFixture('message-text').json);
    const status = routesOf(loadFixture('status-sent-minimal').json);
    expect(message).toEqual([{ groupId: '106540352242922:16505551234' }]);
    expect(status).toEqual([{ groupId: '106540352242922:16505551234:status' }]);
    expect(status[0]!.groupId).not.toBe(message[0]!.groupId);
  });

  it.each([
    ['status-read', '1122334455667:972987654321:status'],
    ['bsuid-status-delivered-no-phone', '106540352242922:US.13491208655302741918:status'],
    // both ids: the BSUID, as the person's conversation group reads a sender
    ['bsuid-status-delivered-username', '106540352242922:US.13491208655302741918:status'],
    ['status-group-read', '<BUSINESS_PHONE_NUMBER_ID>:fowefinoewcnw:status'],
  ])('%s → %s', (name, group) => {
    const routes = routesOf(loadFixture(name).json);
    expect(routes).toHaveLength(1);
    expect(routes[0]!.lane).toBeUndefined();
    expect(routes[0]!.groupId).toBe(group);
  });

  it('keeps every other payload on its conversation group, unsplit', () => {
    for (const fixture of webhookFixtures()) {
      const events = envelopeToEvents(fixture.json);
      if (events.some((e) => e.kind === 'status')) continue;
      expect(inboundRoutes(fixture.json, events)).toEqual([{ groupId: conversationGroupId(fixture.json) }]);
    }
  });

  it('splits a payload mixing messages and statuses into two lanes, each event in exactly one', () => {
    const routes = routesOf(MIXED);
    expect(routes).toEqual([
      { groupId: '1:5', lane: 'conversation' },
      { groupId: '1:5:status', lane: 'statuses' },
    ]);
    const events = envelopeToEvents(MIXED);
    const byLane = routes.map((route) => events.filter(inLane(route.lane)).map((e) => e.kind));
    expect(byLane).toEqual([['message'], ['status']]);
  });

  it("derives the status group's person as the conversation group does: the BSUID when Meta sends both ids", () => {
    const both = JSON.parse(JSON.stringify(MIXED)) as { entry: { changes: { value: { messages: Record<string, unknown>[]; statuses: Record<string, unknown>[] } }[] }[] };
    both.entry[0]!.changes[0]!.value.messages[0]!.from_user_id = 'US.5';
    both.entry[0]!.changes[0]!.value.statuses[0]!.recipient_user_id = 'US.5';
    expect(routesOf(both)).toEqual([
      { groupId: '1:US.5', lane: 'conversation' },
      { groupId: '1:US.5:status', lane: 'statuses' },
    ]);
    // The same person once Meta stops sending the number: the same two groups.
    delete both.entry[0]!.changes[0]!.value.messages[0]!.from;
    delete both.entry[0]!.changes[0]!.value.statuses[0]!.recipient_id;
    expect(routesOf(both).map((r) => r.groupId)).toEqual(['1:US.5', '1:US.5:status']);
  });

  it('handles every event of a message without a lane (standard queue, or sent before the split)', () => {
    expect(envelopeToEvents(MIXED).filter(inLane(undefined)).map((e) => e.kind)).toEqual(['message', 'status']);
  });
});

describe('sqsGroupId', () => {
  it('replaces characters SQS refuses and hashes what is too long', () => {
    expect(sqsGroupId('1:a b\u00e9')).toBe('1:a_b_');
    const long = sqsGroupId(`1:${'x'.repeat(200)}`);
    expect(long).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(sqsGroupId(`1:${'x'.repeat(200)}`)).toBe(long);
    expect(sqsGroupId(`1:${'y'.repeat(200)}`)).not.toBe(long);
  });
});

describe('inTimestampOrder', () => {
  const event = (key: string, timestamp?: string): WhatsAppEvent => ({ key, kind: 'message', field: 'messages', timestamp, raw: {} });
  const keys = (events: WhatsAppEvent[]) => inTimestampOrder(events).map((e) => e.key);

  it.each([
    ['already in order', [event('a', '1'), event('b', '2'), event('c', '3')], ['a', 'b', 'c']],
    ['reversed', [event('c', '3'), event('b', '2'), event('a', '1')], ['a', 'b', 'c']],
    ['ties keep payload order', [event('x', '5'), event('y', '5'), event('a', '1'), event('z', '5')], ['a', 'x', 'y', 'z']],
    ['no timestamp stays after the event before it', [event('b', '2'), event('err'), event('a', '1')], ['a', 'b', 'err']],
    ['no timestamp at the start stays first', [event('err'), event('b', '2'), event('a', '1')], ['err', 'a', 'b']],
    ['numeric strings compare as numbers', [event('late', '1000000000'), event('early', '999999999')], ['early', 'late']],
  ])('%s', (_name, events, expected) => {
    expect(keys(events)).toEqual(expected);
  });

  it('orders a real payload whose statuses precede its message in time', () => {
    expect(inTimestampOrder(envelopeToEvents(MIXED)).map((e) => e.kind)).toEqual(['status', 'message']);
  });
});
