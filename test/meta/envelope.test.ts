import type { EventKind } from '../../src/meta/event';
import {
  MEDIA_KINDS,
  canonicalJson,
  envelopeToEvents,
  eventKey,
  isAccountField,
} from '../../src/meta/envelope';
import { loadFixture, webhookFixtures } from '../support/fixtures';
import {
  eventSubject,
  expectedContentKey,
  reverseKeyOrder,
  valueAt,
} from './fixture-events';

/** Content-hash key of the value at `raw` (a dotted path into the fixture). */
function hashed(
  kind: EventKind,
  parts: { field: string; wabaId?: string; phoneNumberId?: string; timestamp?: string; raw: string },
): (fixture: unknown) => string {
  return (fixture) => expectedContentKey(kind, { ...parts, raw: valueAt(fixture, parts.raw) });
}

type Row = [kind: EventKind, subject: string, key: string | ((fixture: unknown) => string)];

// Ids that Meta's docs and pywa reuse across many examples.
const DOC_WABA = '102290129340398';
const DOC_PNID = '106540352242922';
const DOC_WAMID_4RGA = 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=';
const DOC_WAMID_MXMAA = 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=';
const PYWA_PNID = '1122334455667';

/**
 * Every payload fixture, read by hand: the events it must give, in order. Keys of content-hash
 * events are computed by an independent oracle from the parts written here.
 */
const EXPECTED: Record<string, Row[]> = {
  'account-update-deleted': [
    ['account', 'account_update', hashed('account', { field: 'account_update', wabaId: DOC_WABA, timestamp: '1743451903', raw: 'entry.0.changes.0.value' })],
  ],
  'account-update-violation': [
    ['account', 'account_update', hashed('account', { field: 'account_update', wabaId: DOC_WABA, timestamp: '1743451903', raw: 'entry.0.changes.0.value' })],
  ],
  'phone-number-quality-update-flagged': [
    ['account', 'phone_number_quality_update', hashed('account', { field: 'phone_number_quality_update', wabaId: '495709166956424', timestamp: '1731617831', raw: 'entry.0.changes.0.value' })],
  ],
  // Both messages carry the placeholder id wamid.ID, so they share a key: dedupe keeps the first.
  'batch-two-changes-two-texts': [
    ['message', 'text', 'msg#PHONE_NUMBER_ID#wamid.ID'],
    ['message', 'text', 'msg#PHONE_NUMBER_ID#wamid.ID'],
  ],
  'bsuid-message-text-no-from': [['message', 'text', `msg#${DOC_PNID}#${DOC_WAMID_4RGA}`]],
  'bsuid-status-delivered-no-phone': [['status', 'delivered', `status#${DOC_WAMID_MXMAA}#delivered`]],
  'bsuid-status-delivered-username': [['status', 'delivered', `status#${DOC_WAMID_MXMAA}#delivered`]],
  // history is an account field: past messages must not reach the AI as new ones.
  'history-multi-message': [
    ['account', 'history', hashed('account', { field: 'history', wabaId: DOC_WABA, phoneNumberId: DOC_PNID, raw: 'entry.0.changes.0.value' })],
  ],
  'message-audio-file-forwarded': [['message', 'audio', `msg#${PYWA_PNID}#wamid.xyzxyz`]],
  'message-audio-voice': [['message', 'audio', `msg#${DOC_PNID}#${DOC_WAMID_4RGA}`]],
  'message-button-quick-reply-from-user-id': [['message', 'button', `msg#${PYWA_PNID}#wamid.xsidjx`]],
  'message-button-template-quick-reply': [['message', 'button', `msg#${DOC_PNID}#${DOC_WAMID_MXMAA}`]],
  'message-contacts': [['message', 'contacts', `msg#${DOC_PNID}#${DOC_WAMID_4RGA}`]],
  'message-document': [['message', 'document', `msg#${DOC_PNID}#${DOC_WAMID_4RGA}`]],
  'message-edit': [['message', 'edit', `msg#${DOC_PNID}#${DOC_WAMID_MXMAA}`]],
  'message-image-with-url': [['message', 'image', `msg#${PYWA_PNID}#wamid.xyzxyz`]],
  'message-image': [['message', 'image', `msg#${DOC_PNID}#${DOC_WAMID_4RGA}`]],
  'message-interactive-button-reply': [
    ['message', 'interactive', `msg#${DOC_PNID}#wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTZBQzg0MzQ4QjRCM0NGNkVGOAA=`],
  ],
  'message-interactive-list-reply': [['message', 'interactive', `msg#${DOC_PNID}#${DOC_WAMID_MXMAA}`]],
  'message-interactive-nfm-reply-numeric-timestamp': [['message', 'interactive', 'msg#PHONE_NUMBER_ID#wamid.ID']],
  'message-interactive-nfm-reply': [['message', 'interactive', `msg#${PYWA_PNID}#wamid.wegrchytvwcggt==`]],
  'message-location-forwarded': [['message', 'location', `msg#${PYWA_PNID}#wamid.xyzxyz`]],
  'message-location': [['message', 'location', `msg#${DOC_PNID}#${DOC_WAMID_MXMAA}`]],
  'message-order': [['message', 'order', `msg#${DOC_PNID}#${DOC_WAMID_MXMAA}`]],
  'message-reaction-empty-emoji': [['message', 'reaction', `msg#${PYWA_PNID}#wamid.xyzxyz`]],
  'message-reaction-removed': [['message', 'reaction', `msg#${DOC_PNID}#${DOC_WAMID_MXMAA}`]],
  'message-reaction': [['message', 'reaction', `msg#${DOC_PNID}#${DOC_WAMID_MXMAA}`]],
  'message-revoke': [['message', 'revoke', `msg#${DOC_PNID}#${DOC_WAMID_MXMAA}`]],
  'message-sticker-animated': [['message', 'sticker', `msg#${PYWA_PNID}#wamid.xyzxyz`]],
  'message-sticker': [['message', 'sticker', `msg#${DOC_PNID}#${DOC_WAMID_4RGA}`]],
  'message-system-identity-changed': [['message', 'system', `msg#${PYWA_PNID}#wamid.xyzxyz`]],
  'message-system-user-changed-user-id': [['message', 'system', `msg#${DOC_PNID}#wamid.HBgLMTY1MDM4Nzk0MzkVAgASGAoxMTgyMDg2MjY4AA==`]],
  // Conversation-state changes (src/conversation) stay account events; the person and the item's timestamp are read out.
  'smb-message-echo-text': [
    ['account', 'smb_message_echoes', hashed('account', { field: 'smb_message_echoes', wabaId: DOC_WABA, phoneNumberId: DOC_PNID, timestamp: '1739321024', raw: 'entry.0.changes.0.value' })],
  ],
  'messaging-handovers-control-taken': [
    ['account', 'messaging_handovers', hashed('account', { field: 'messaging_handovers', wabaId: DOC_WABA, phoneNumberId: DOC_PNID, timestamp: '1750101000', raw: 'entry.0.changes.0.value' })],
  ],
  'messaging-handovers-control-passed': [
    ['account', 'messaging_handovers', hashed('account', { field: 'messaging_handovers', wabaId: DOC_WABA, phoneNumberId: DOC_PNID, timestamp: '1750104600', raw: 'entry.0.changes.0.value' })],
  ],
  'standby-message-text': [
    ['account', 'standby', hashed('account', { field: 'standby', wabaId: DOC_WABA, phoneNumberId: DOC_PNID, timestamp: '1750102000', raw: 'entry.0.changes.0.value' })],
  ],
  'message-system-user-changed-number': [
    ['message', 'system', `msg#${DOC_PNID}#wamid.HBgLMTk4MzU1NTE5NzQVAgASGAoxMTgyMDg2MjY3AA==`],
  ],
  'message-text-ctwa-referral': [
    ['message', 'text', `msg#${DOC_PNID}#wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA=`],
  ],
  'message-text-frequently-forwarded': [['message', 'text', `msg#${PYWA_PNID}#wamid.xyzxyz`]],
  'message-text-product-inquiry': [
    ['message', 'text', `msg#${DOC_PNID}#wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTA2NTUwRkNEMDdFQjJCRUU0NQA=`],
  ],
  'message-text-reply-context': [['message', 'text', `msg#${PYWA_PNID}#wamid.xyzxyz`]],
  'message-text': [['message', 'text', `msg#${DOC_PNID}#${DOC_WAMID_4RGA}`]],
  // unsupported is Meta's own type for "the user sent something the API cannot show": a message.
  'message-unsupported-poll': [['message', 'unsupported', `msg#${PYWA_PNID}#wamid.xyzxyz`]],
  'message-unsupported': [['message', 'unsupported', `msg#${DOC_PNID}#${DOC_WAMID_MXMAA}`]],
  'message-video': [['message', 'video', `msg#${DOC_PNID}#${DOC_WAMID_4RGA}`]],
  // field sits on the entry, not the change: read from there.
  'odd-account-update-misplaced-field-object': [
    ['account', 'account_update', hashed('account', { field: 'account_update', wabaId: '2949482758682047', timestamp: '1745337174', raw: 'entry.0.changes.0.value' })],
  ],
  'odd-bsuid-only-no-from': [['message', 'text', 'msg#PHONE_NUMBER_ID#wamid.ID']],
  'odd-button-with-referral-and-forwarded-context': [['message', 'button', 'msg#PHONE_NUMBER_ID#wamid.ID']],
  'odd-contacts-without-profile': [['message', 'text', 'msg#PHONE_NUMBER_ID#wamid.ID']],
  'odd-message-interactive-without-body': [
    ['message', 'interactive', `msg#${PYWA_PNID}#wamid.wegrchytvwcggt=`],
    ['error', 'messages', hashed('error', { field: 'messages', wabaId: '1234567890987654321', phoneNumberId: PYWA_PNID, raw: 'entry.0.changes.0.value.errors.0' })],
  ],
  // "unknown" is the older name Meta used for unsupported: still a message.
  'odd-message-type-unknown': [['message', 'unknown', 'msg#PHONE_NUMBER_ID#wamid.ID']],
  'odd-status-failed-minimal-errors': [['status', 'failed', 'status#amid.ID#failed']],
  'status-delivered-cbp': [
    ['status', 'delivered', 'status#wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA#delivered'],
  ],
  'status-failed-130472': [['status', 'failed', 'status#wamid.xyzxyz#failed']],
  'status-failed': [['status', 'failed', 'status#wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA#failed']],
  // A group receipt is keyed per member: sha256('US.123456') (recipient_participant_user_id), first 16 hex.
  'status-group-read': [['status', 'read', 'status#<WHATSAPP_MESSAGE_ID>#read#p:770dbc756f4df482']],
  'status-played': [['status', 'played', 'status#wamid.xyzxyz#played']],
  'status-read': [['status', 'read', 'status#wamid.xyzxyz#read']],
  'status-sent-biz-opaque-callback-data': [['status', 'sent', 'status#wamid.xyzxyz#sent']],
  'status-sent-minimal': [['status', 'sent', `status#${DOC_WAMID_MXMAA}#sent`]],
  'status-sent-pmp-pricing': [['status', 'sent', `status#${DOC_WAMID_MXMAA}#sent`]],
  'template-status-approved': [
    ['account', 'message_template_status_update', hashed('account', { field: 'message_template_status_update', wabaId: DOC_WABA, timestamp: '1751247548', raw: 'entry.0.changes.0.value' })],
  ],
  'value-errors-rate-limit': [
    ['error', 'messages', hashed('error', { field: 'messages', wabaId: DOC_WABA, phoneNumberId: DOC_PNID, raw: 'entry.0.changes.0.value.errors.0' })],
  ],
};

describe('envelopeToEvents over every fixture', () => {
  const fixtures = webhookFixtures();

  it('has a table row for every fixture and a fixture for every row', () => {
    expect(fixtures.map((f) => f.name).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(fixtures.map((f) => [f.name, f] as const))('%s', (name, fixture) => {
    const events = envelopeToEvents(fixture.json);
    const expected = (EXPECTED[name] ?? []).map(([kind, subject, key]) => [
      kind,
      subject,
      typeof key === 'string' ? key : key(fixture.json),
    ]);
    expect(events.map((e) => [e.kind, eventSubject(e), e.key])).toEqual(expected);
  });

  it('gives the same keys whatever the key order of the JSON', () => {
    for (const fixture of fixtures) {
      const keys = envelopeToEvents(fixture.json).map((e) => e.key);
      expect(envelopeToEvents(reverseKeyOrder(fixture.json)).map((e) => e.key)).toEqual(keys);
    }
  });

  it('keeps each item untouched as raw', () => {
    const fixture = loadFixture('status-failed').json;
    const [event] = envelopeToEvents(fixture);
    expect(event?.raw).toBe(valueAt(fixture, 'entry.0.changes.0.value.statuses.0'));
  });
});

/** What a fixture's event carries besides kind and key: path in the event → expected value. */
const CONTENT: [fixture: string, index: number, expected: Record<string, unknown>][] = [
  ['batch-two-changes-two-texts', 0, { 'message.text': 'MESSAGE_BODY', timestamp: '1669233778', 'contact.name': 'NAME' }],
  ['batch-two-changes-two-texts', 1, { 'message.text': 'MESSAGE_BODY2', timestamp: '1669233779' }],
  ['message-text', 0, {
    'message.text': 'Does it come in another color?',
    field: 'messages',
    wabaId: DOC_WABA,
    phoneNumberId: DOC_PNID,
    displayPhoneNumber: '15550783881',
    timestamp: '1749416383',
    contact: { userKey: '16505551234', waId: '16505551234', userId: undefined, name: 'Sheena Nelson', username: undefined },
  }],
  ['message-text-reply-context', 0, { 'message.text': 'replied text', 'message.replyToId': 'wamid.xyzxyz==' }],
  ['message-text-frequently-forwarded', 0, { 'message.text': 'text forwarded many times', 'message.replyToId': undefined }],
  ['message-text-product-inquiry', 0, {
    'message.text': 'Is this still available?',
    'message.replyToId': 'wamid.HBgLMTY1MDM4Nzk0MzkVAgARGA9wcm9kdWN0X2lucXVpcnkA',
  }],
  ['message-text-ctwa-referral', 0, { 'message.text': 'Can I get more info about this?' }],
  ['message-image', 0, {
    'message.text': 'Taj Mahal',
    'message.media': {
      kind: 'image',
      id: '1003383421387256',
      mimeType: 'image/jpeg',
      sha256: 'SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=',
      filename: undefined,
      caption: 'Taj Mahal',
    },
  }],
  ['message-image-with-url', 0, { 'message.text': undefined, 'message.media.id': '65463453', 'message.media.sha256': '4654+8g=' }],
  ['message-audio-voice', 0, { 'message.text': undefined, 'message.media.kind': 'audio', 'message.media.id': '1908647269898587', 'message.media.mimeType': 'audio/ogg; codecs=opus' }],
  ['message-audio-file-forwarded', 0, {
    'message.media.kind': 'audio',
    'message.media.id': '1234567890987654321',
    'message.media.sha256': 'E3dxS/PdYZE7ppA3pQ4mpCFaXBJ8pX4SRN/dsfvds/iPGA=',
    contact: { userKey: '972987654321', waId: '972987654321', userId: 'US.13491208655302741918', name: 'Test Name', username: undefined },
  }],
  ['message-video', 0, { 'message.text': 'Timelapse of growth', 'message.media.kind': 'video', 'message.media.id': '731675419373506', 'message.media.mimeType': 'video/mp4' }],
  ['message-document', 0, {
    'message.text': 'my receipt',
    'message.media': {
      kind: 'document',
      id: '622684793477189',
      mimeType: 'application/pdf',
      sha256: 'V5OPpLD/gEG6Xjg0MbmQDLFgcKsL+j5LfY4ny/pZ4MY=',
      filename: 'receipt.pdf',
      caption: 'my receipt',
    },
  }],
  ['message-sticker', 0, { 'message.text': undefined, 'message.media.kind': 'sticker', 'message.media.id': '1908647269898587', 'message.media.mimeType': 'image/webp' }],
  ['message-sticker-animated', 0, { 'message.media.kind': 'sticker', 'message.media.id': '1234567890987654321' }],
  ['message-button-template-quick-reply', 0, {
    'message.text': 'Unsubscribe',
    'message.replyToId': 'wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=',
  }],
  ['message-button-quick-reply-from-user-id', 0, {
    'message.text': 'title',
    contact: { userKey: '972987654321', waId: '972987654321', userId: 'US.13491208655302741918', name: 'Test Name', username: undefined },
  }],
  ['message-interactive-button-reply', 0, { 'message.text': 'Cancel' }],
  ['message-interactive-list-reply', 0, { 'message.text': 'Priority Mail Express' }],
  ['message-interactive-nfm-reply', 0, { 'message.text': 'Sent', 'message.replyToId': 'wamid.gvwegfretge==' }],
  ['message-interactive-nfm-reply-numeric-timestamp', 0, { 'message.text': 'Sent', timestamp: '1669233778' }],
  ['message-location', 0, { 'message.text': 'Philz Coffee\n101 Forest Ave, Palo Alto, CA 94301' }],
  ['message-location-forwarded', 0, { 'message.text': undefined }],
  ['message-contacts', 0, { 'message.text': 'Barbara J. Johnson', 'message.media': undefined }],
  ['message-order', 0, { 'message.text': 'Love these!' }],
  ['message-reaction', 0, {
    'message.text': '👍',
    'message.targetMessageId': 'wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=',
  }],
  ['message-reaction-removed', 0, {
    'message.text': undefined,
    'message.targetMessageId': 'wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=',
  }],
  ['message-reaction-empty-emoji', 0, { 'message.text': undefined, 'message.targetMessageId': 'wamid.yzxyzx=' }],
  ['message-revoke', 0, {
    'message.text': undefined,
    'message.targetMessageId': 'wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=',
  }],
  ['message-edit', 0, {
    'message.text': 'Updated image caption',
    'message.media.kind': 'image',
    'message.media.id': '1234567890',
    'message.targetMessageId': 'wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=',
  }],
  ['message-system-identity-changed', 0, { 'message.text': 'User identity changed' }],
  // No contacts[] at all: the sender is still known from `from`.
  ['message-system-user-changed-number', 0, {
    'message.text': 'User Sheena Nelson changed from 16505551234 to 12195555358',
    contact: { userKey: '16505551234', waId: '16505551234', userId: undefined, name: undefined, username: undefined },
  }],
  ['message-unsupported-poll', 0, { 'message.text': undefined, 'message.media': undefined }],
  ['odd-message-interactive-without-body', 0, { 'message.text': undefined }],
  ['odd-message-interactive-without-body', 1, { 'error.code': 131000, 'error.title': 'Something went wrong' }],
  ['value-errors-rate-limit', 0, { 'error.code': 130429, 'error.title': 'Rate limit hit', phoneNumberId: DOC_PNID }],
  // The contact's wa_id (WHATSAPP_ID) is not the sender (16315551234): its name is not borrowed.
  ['odd-button-with-referral-and-forwarded-context', 0, {
    'message.text': 'No',
    timestamp: '1669233778',
    'message.replyToId': 'wamid.ID',
    contact: { userKey: '16315551234', waId: '16315551234', userId: undefined, name: undefined, username: undefined },
  }],
  ['odd-contacts-without-profile', 0, {
    contact: { userKey: 'PHONE_NUMBER', waId: 'PHONE_NUMBER', userId: undefined, name: undefined, username: undefined },
  }],
  ['status-failed', 0, { 'status.recipientId': '16505551234', 'contact.userKey': '16505551234', 'contact.name': undefined }],
  ['account-update-deleted', 0, { wabaId: DOC_WABA, timestamp: '1743451903', phoneNumberId: undefined }],
];

describe('event content per fixture', () => {
  it.each(CONTENT)('%s #%d', (name, index, expected) => {
    const event = envelopeToEvents(loadFixture(name).json)[index];
    for (const [path, value] of Object.entries(expected)) {
      expect([path, valueAt(event, path)]).toEqual([path, value]);
    }
  });
});

describe('BSUID rollout (2026): from / wa_id may be missing', () => {
  it('keys a message without `from` on from_user_id', () => {
    const [event] = envelopeToEvents(loadFixture('bsuid-message-text-no-from').json);
    // Meta's doc example spells the contact's user_id "uUS.…" (a typo): it does not match
    // from_user_id, so no name is borrowed, but the user is still keyed.
    expect(event?.contact).toEqual({
      userKey: 'US.13491208655302741918',
      waId: undefined,
      userId: 'US.13491208655302741918',
      name: undefined,
      username: undefined,
    });
  });

  it('keys a message naming no sender on the only contact, user_id', () => {
    const [event] = envelopeToEvents(loadFixture('odd-bsuid-only-no-from').json);
    expect(event?.contact).toEqual({
      userKey: 'BSUID_123',
      waId: undefined,
      userId: 'BSUID_123',
      name: 'NAME',
      username: undefined,
    });
  });

  it('keys a status without recipient_id on recipient_user_id and matches the contact by user_id', () => {
    const [event] = envelopeToEvents(loadFixture('bsuid-status-delivered-no-phone').json);
    expect(event?.status?.recipientId).toBeUndefined();
    expect(event?.contact).toEqual({
      userKey: 'US.13491208655302741918',
      waId: undefined,
      userId: 'US.13491208655302741918',
      name: 'Pablo M.',
      username: '@pablomorales',
    });
  });

  it('prefers the phone number when both are there', () => {
    const [event] = envelopeToEvents(loadFixture('bsuid-status-delivered-username').json);
    expect(event?.contact).toEqual({
      userKey: '16505551234',
      waId: '16505551234',
      userId: 'US.13491208655302741918',
      name: 'Pablo M.',
      username: '@pablomorales',
    });
  });
});

/** A `messages` change value with the given messages. */
function messagesChange(phoneNumberId: string, messages: unknown[]): unknown {
  return {
    field: 'messages',
    value: {
      messaging_product: 'whatsapp',
      metadata: { display_phone_number: '15550000000', phone_number_id: phoneNumberId },
      contacts: [{ profile: { name: 'A' }, wa_id: '15551110000' }],
      messages,
    },
  };
}

function textMessage(id: string, body: string): unknown {
  return { from: '15551110000', id, timestamp: '1750000000', type: 'text', text: { body } };
}

describe('batches: every entry × change × item, never only [0]', () => {
  it('gives 12 events with 12 distinct keys for 3 entries × 2 changes × 2 messages', () => {
    const entries = [1, 2, 3].map((e) => ({
      id: `waba-${e}`,
      changes: [1, 2].map((c) =>
        messagesChange(`pn-${e}`, [1, 2].map((m) => textMessage(`wamid.${e}.${c}.${m}`, `hello ${e}${c}${m}`))),
      ),
    }));
    const events = envelopeToEvents({ object: 'whatsapp_business_account', entry: entries });

    expect(events).toHaveLength(12);
    expect(new Set(events.map((e) => e.key)).size).toBe(12);
    expect(events.map((e) => e.message?.text)).toEqual([
      'hello 111', 'hello 112', 'hello 121', 'hello 122',
      'hello 211', 'hello 212', 'hello 221', 'hello 222',
      'hello 311', 'hello 312', 'hello 321', 'hello 322',
    ]);
    expect(events[11]).toMatchObject({ key: 'msg#pn-3#wamid.3.2.2', wabaId: 'waba-3', phoneNumberId: 'pn-3' });
  });

  it('gives messages, then statuses, then errors of one change', () => {
    const change = messagesChange('pn', [textMessage('wamid.m1', 'a'), textMessage('wamid.m2', 'b')]) as {
      value: Record<string, unknown>;
    };
    change.value.statuses = [
      { id: 'wamid.s1', status: 'sent', timestamp: '1' },
      { id: 'wamid.s1', status: 'delivered', timestamp: '2' },
    ];
    change.value.errors = [{ code: 130429, title: 'Rate limit hit' }, { code: 131000, title: 'Something went wrong' }];
    const events = envelopeToEvents({ entry: [{ id: 'w', changes: [change] }] });
    expect(events.map((e) => [e.kind, e.key.replace(/sha256:.*/, 'sha256:…')])).toEqual([
      ['message', 'msg#pn#wamid.m1'],
      ['message', 'msg#pn#wamid.m2'],
      ['status', 'status#wamid.s1#sent'],
      ['status', 'status#wamid.s1#delivered'],
      ['error', 'error#sha256:…'],
      ['error', 'error#sha256:…'],
    ]);
    expect(events[4]?.key).not.toBe(events[5]?.key);
  });
});

describe('fields other than messages', () => {
  function accountChange(field: unknown, value: unknown, extra: Record<string, unknown> = {}): unknown {
    return { object: 'whatsapp_business_account', entry: [{ id: 'waba', time: 1751247548, changes: [{ field, value }], ...extra }] };
  }

  it.each([
    ['account_update', 'account'],
    ['message_template_status_update', 'account'],
    ['phone_number_quality_update', 'account'],
    ['smb_message_echoes', 'account'],
    ['calls', 'account'],
    ['group_lifecycle_update', 'account'],
    ['a_field_meta_adds_next_year', 'unknown'],
  ])('field %s is kind %s', (field, kind) => {
    const events = envelopeToEvents(accountChange(field, { event: 'X' }));
    expect(events.map((e) => [e.kind, e.field, e.timestamp, e.raw])).toEqual([[kind, field, '1751247548', { event: 'X' }]]);
    expect(isAccountField(field)).toBe(kind === 'account');
  });

  it('makes a change with no field anywhere unknown, keeping its value', () => {
    const events = envelopeToEvents(accountChange(undefined, { event: 'X' }));
    expect(events.map((e) => [e.kind, e.field, e.raw])).toEqual([['unknown', '', { event: 'X' }]]);
  });

  it('prefers the change field over a misplaced entry field', () => {
    const events = envelopeToEvents(accountChange('account_update', { event: 'X' }, { field: 'messages' }));
    expect(events.map((e) => [e.kind, e.field])).toEqual([['account', 'account_update']]);
  });
});

describe('event keys', () => {
  it('keys group receipts per member: each member’s read is its own event, a retry of one is the same', () => {
    const receipt = (participant: string) => ({ id: 'wamid.GROUPMSG', status: 'read', recipient_type: 'group', recipient_participant_user_id: participant });
    const payload = {
      object: 'whatsapp_business_account',
      entry: [{ id: 'w', changes: [{ field: 'messages', value: { metadata: { phone_number_id: '1' }, statuses: [receipt('US.1'), receipt('US.2'), receipt('US.1')] } }] }],
    };
    const keys = envelopeToEvents(payload).map((e) => e.key);
    expect(keys[0]).toMatch(/^status#wamid\.GROUPMSG#read#p:[0-9a-f]{16}$/);
    expect(keys[1]).not.toBe(keys[0]);
    expect(keys[2]).toBe(keys[0]);
    expect(keys.join()).not.toContain('US.1');
  });


  const account = loadFixture('account-update-violation').json;

  it('does not depend on the order of JSON keys', () => {
    const [original] = envelopeToEvents(account);
    const [reordered] = envelopeToEvents(reverseKeyOrder(account));
    expect(JSON.stringify(reverseKeyOrder(account))).not.toBe(JSON.stringify(account));
    expect(reordered?.key).toBe(original?.key);
  });

  it('changes with the content', () => {
    const [original] = envelopeToEvents(account);
    const changed = JSON.parse(JSON.stringify(account).replace('ADULT', 'SCAM'));
    const [other] = envelopeToEvents(changed);
    expect(other?.key).toMatch(/^account#sha256:[0-9a-f]{64}$/);
    expect(other?.key).not.toBe(original?.key);
  });

  it('tells a repeated account event from a retry by entry.time', () => {
    const [original] = envelopeToEvents(account);
    const later = JSON.parse(JSON.stringify(account).replace('1743451903', '1743460000'));
    expect(envelopeToEvents(later)[0]?.key).not.toBe(original?.key);
  });

  it('hashes a message lacking an id or a phone_number_id', () => {
    const noId = envelopeToEvents({ entry: [{ id: 'w', changes: [messagesChange('pn', [{ type: 'text', text: { body: 'x' } }])] }] });
    expect(noId.map((e) => [e.kind, e.message?.id])).toEqual([['message', '']]);
    expect(noId[0]?.key).toMatch(/^message#sha256:[0-9a-f]{64}$/);

    const noLine = envelopeToEvents({
      entry: [{ id: 'w', changes: [{ field: 'messages', value: { messages: [textMessage('wamid.1', 'x')] } }] }],
    });
    expect(noLine[0]?.key).toMatch(/^message#sha256:[0-9a-f]{64}$/);
  });

  it('follows the documented shapes', () => {
    const base = { field: 'messages', raw: {} };
    expect(eventKey({ ...base, kind: 'message', phoneNumberId: 'p', message: { id: 'wamid.1', type: 'text' } })).toBe('msg#p#wamid.1');
    expect(eventKey({ ...base, kind: 'status', status: { id: 'wamid.1', status: 'read' } })).toBe('status#wamid.1#read');
    expect(eventKey({ ...base, kind: 'error' })).toBe(expectedContentKey('error', base));
  });

  it('serialises canonically: sorted keys, JSON rules, no throw on cycles or bigints', () => {
    expect(canonicalJson({ b: [3, { d: 1, c: undefined }], a: 'x' })).toBe('{"a":"x","b":[3,{"d":1}]}');
    expect(canonicalJson([undefined, NaN, () => 1])).toBe('[null,null,null]');
    const cycle: Record<string, unknown> = { n: 1n };
    cycle.self = cycle;
    expect(canonicalJson(cycle)).toBe('{"n":"1n","self":"[Circular]"}');
  });
});

describe('garbage never throws and is never dropped', () => {
  it.each([
    ['null', null],
    ['a number', 42],
    ['a string', 'entry'],
    ['an empty object', {}],
    ['entry not an array', { entry: 'nope' }],
    ['an empty entry list', { entry: [] }],
    ['an entry that is not an object', { entry: [7] }],
    ['changes missing', { entry: [{ id: 'w' }] }],
    ['a change that is not an object', { entry: [{ id: 'w', changes: [null] }] }],
    ['a messages change with no value', { entry: [{ id: 'w', changes: [{ field: 'messages' }] }] }],
    ['a messages change with empty lists', { entry: [{ id: 'w', changes: [{ field: 'messages', value: { messages: [] } }] }] }],
  ])('%s gives one unknown event', (_name, payload) => {
    const events = envelopeToEvents(payload);
    expect(events.map((e) => e.kind)).toEqual(['unknown']);
    expect(events[0]?.key).toMatch(/^unknown#sha256:[0-9a-f]{64}$/);
  });

  it('forwards a JSON body that is not an envelope whole, as one unknown event', () => {
    const notAWebhook = loadFixture('verification-requests').json;
    expect(envelopeToEvents(notAWebhook).map((e) => [e.kind, e.field, e.key, e.raw])).toEqual([
      ['unknown', '', expectedContentKey('unknown', { field: '', raw: notAWebhook }), notAWebhook],
    ]);
  });

  it('reads messages that are not an array as one item', () => {
    const events = envelopeToEvents({
      entry: [{ id: 'w', changes: [{ field: 'messages', value: { metadata: { phone_number_id: 'pn' }, messages: textMessage('wamid.1', 'hi') } }] }],
    });
    expect(events.map((e) => [e.kind, e.key, e.message?.text])).toEqual([['message', 'msg#pn#wamid.1', 'hi']]);
  });

  it('forwards items that are not objects as unknown, next to the good ones', () => {
    const change = messagesChange('pn', [textMessage('wamid.1', 'hi'), 'junk', null]) as { value: Record<string, unknown> };
    change.value.statuses = [42, { status: 'read' }];
    change.value.errors = ['boom'];
    const events = envelopeToEvents({ entry: [{ id: 'w', changes: [change] }] });
    expect(events.map((e) => [e.kind, e.field, e.raw])).toEqual([
      ['message', 'messages', textMessage('wamid.1', 'hi')],
      ['unknown', 'messages', 'junk'],
      ['unknown', 'messages', null],
      ['unknown', 'messages', 42],
      ['unknown', 'messages', { status: 'read' }],
      ['unknown', 'messages', 'boom'],
    ]);
    expect(events.every((e) => e.phoneNumberId === 'pn')).toBe(true);
  });

  it('makes a message of a type Meta has not documented unknown, keeping id and type', () => {
    const poll = { from: '1', id: 'wamid.p', timestamp: 1750000000, type: 'poll', poll: { q: '?' } };
    const [event] = envelopeToEvents({ entry: [{ id: 'w', changes: [messagesChange('pn', [poll])] }] });
    expect(event).toMatchObject({ kind: 'unknown', message: { id: 'wamid.p', type: 'poll' }, timestamp: '1750000000', raw: poll });
    // Keyed by its wamid all the same, so that learning the type later cannot deliver it twice.
    expect(event?.key).toBe('msg#pn#wamid.p');
  });

  it('survives a payload whose getters throw', () => {
    const hostile = Object.defineProperty({}, 'entry', {
      enumerable: true,
      get() {
        throw new Error('no');
      },
    });
    const events = envelopeToEvents(hostile);
    expect(events.map((e) => [e.kind, e.raw])).toEqual([['unknown', hostile]]);
    expect(events[0]?.key).toMatch(/^unknown#sha256:[0-9a-f]{64}$/);
  });
});

describe('media kinds', () => {
  it('lists every media kind (their caps live in src/media)', () => {
    expect(MEDIA_KINDS).toEqual(['image', 'audio', 'video', 'document', 'sticker']);
  });
});
