import { conversationGroupId, inTimestampOrder, sqsGroupId } from '../../src/meta/conversation';
import { envelopeToEvents } from '../../src/meta/envelope';
import type { WhatsAppEvent } from '../../src/meta/event';
import { loadFixture, webhookFixtures } from '../support/fixtures';

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
    // statuses: recipient_id, else recipient_user_id
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

  it('puts a message payload and the statuses of the replies to that person in one group', () => {
    const message = loadFixture('message-text').json;
    const status = loadFixture('status-sent-minimal').json;
    expect(conversationGroupId(status)).toBe(conversationGroupId(message));
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
    const payload = {
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
    expect(inTimestampOrder(envelopeToEvents(payload)).map((e) => e.kind)).toEqual(['status', 'message']);
  });
});
