import { observationOf } from '../../src/conversation/contact-facts';
import { activePause, applyFact, learnIdentity, WINDOW_SECONDS, type ContactFact, type ContactState } from '../../src/conversation/contact-state';
import { conversationGroupId, conversationKeyOf } from '../../src/meta/conversation';
import { envelopeToEvents } from '../../src/meta/envelope';
import { loadFixture } from '../support/fixtures';

const T = 1_750_000_000_000;
const DAY = WINDOW_SECONDS * 1000;
const base: ContactState = { lineId: 'l1', contactId: 'ct_1' };
const eventsOf = (name: string) => envelopeToEvents(loadFixture(name).json);

describe('window, pause and identity rules (pure)', () => {
  const cases: Array<[string, ContactState, ContactFact, Partial<ContactState>]> = [
    ['a message opens the window at Meta time + 24 h', base, { type: 'inbound', at: T }, { windowOpenUntil: T + DAY, lastInboundAt: T }],
    ['a later message moves it forward', { ...base, windowOpenUntil: T + DAY, lastInboundAt: T }, { type: 'inbound', at: T + 60_000 }, { windowOpenUntil: T + 60_000 + DAY, lastInboundAt: T + 60_000 }],
    ['a late (older) webhook never moves it back', { ...base, windowOpenUntil: T + DAY, lastInboundAt: T }, { type: 'inbound', at: T - 3 * DAY }, { windowOpenUntil: T + DAY, lastInboundAt: T }],
    ['a call from the person opens it', base, { type: 'call', at: T }, { windowOpenUntil: T + DAY, lastInboundAt: undefined }],
    ['an echo pauses for pauseMinutes from its Meta time', base, { type: 'business_echo', at: T, pauseMinutes: 60 }, { pausedUntil: T + 3_600_000, pausedBy: 'business_app' }],
    ['each echo renews the pause', { ...base, pausedUntil: T + 3_600_000, pausedBy: 'business_app' }, { type: 'business_echo', at: T + 600_000, pauseMinutes: 60 }, { pausedUntil: T + 4_200_000 }],
    ['an older echo does not shorten it', { ...base, pausedUntil: T + 3_600_000, pausedBy: 'business_app' }, { type: 'business_echo', at: T - 600_000, pauseMinutes: 60 }, { pausedUntil: T + 3_600_000 }],
    ['thread control lost: paused with no end', base, { type: 'thread_control_lost', at: T }, { pausedBy: 'meta_handover', pausedUntil: undefined, handoverAt: T }],
    ['control back: the handover pause ends', { ...base, pausedBy: 'meta_handover', handoverAt: T }, { type: 'thread_control_back', at: T + 1000 }, { pausedBy: undefined, handoverAt: T + 1000 }],
    ['a late "lost" after "back" changes nothing', { ...base, handoverAt: T + 1000 }, { type: 'thread_control_lost', at: T }, { pausedBy: undefined }],
    ['an echo does not end a handover pause', { ...base, pausedBy: 'meta_handover', handoverAt: T }, { type: 'business_echo', at: T, pauseMinutes: 60 }, { pausedBy: 'meta_handover', pausedUntil: undefined }],
    ['user_changed_number moves the number; window and pause stay', { ...base, waId: '1', userId: 'US.1', windowOpenUntil: T, pausedUntil: T, pausedBy: 'api' }, { type: 'number_changed', newWaId: '2', at: T }, { waId: '2', userId: 'US.1', windowOpenUntil: T, pausedUntil: T, pausedBy: 'api', identityAt: T }],
    ['user_changed_user_id moves the BSUID', { ...base, userId: 'US.1' }, { type: 'user_id_changed', newUserId: 'US.2', at: T }, { userId: 'US.2' }],
    ['a number change older than the ids already learnt moves nothing', { ...base, waId: '3', identityAt: T + 1 }, { type: 'number_changed', newWaId: '2', at: T }, { waId: '3', identityAt: T + 1 }],
    ['a 131047 closes an open window at the status time', { ...base, windowOpenUntil: T + DAY }, { type: 'window_closed', at: T }, { windowOpenUntil: T, windowClosedAt: T }],
    ['a 131047 with no window known: closed from then', base, { type: 'window_closed', at: T }, { windowOpenUntil: T, windowClosedAt: T }],
    ['a 131047 after the window already ended keeps the earlier end', { ...base, windowOpenUntil: T - 1000 }, { type: 'window_closed', at: T }, { windowOpenUntil: T - 1000, windowClosedAt: T }],
    ['a late retry of a message older than the 131047 does not reopen it', { ...base, windowOpenUntil: T, windowClosedAt: T }, { type: 'inbound', at: T - 60_000 }, { windowOpenUntil: T, windowClosedAt: T }],
    ['a message after the 131047 reopens it', { ...base, windowOpenUntil: T, windowClosedAt: T }, { type: 'inbound', at: T + 60_000 }, { windowOpenUntil: T + 60_000 + DAY }],
    ['the API pause', base, { type: 'pause', until: T }, { pausedUntil: T, pausedBy: 'api' }],
    ['resume', { ...base, pausedUntil: T, pausedBy: 'business_app' }, { type: 'resume' }, { pausedUntil: undefined, pausedBy: undefined }],
  ];
  it.each(cases)('%s', (_name, state, fact, expected) => {
    const next = applyFact(state, fact);
    for (const [key, value] of Object.entries(expected)) expect(next[key as keyof ContactState]).toEqual(value);
    // Idempotent: the same fact again changes nothing.
    expect(applyFact(next, fact)).toEqual(next);
  });

  it('learns the other id from an event carrying both; a newer event’s id replaces a stored one, an older one never does', () => {
    expect(learnIdentity({ ...base, userId: 'US.1' }, { waId: '1', userId: 'US.1' }, T)).toMatchObject({ waId: '1', userId: 'US.1', identityAt: T });
    expect(learnIdentity({ ...base, waId: '1', identityAt: T }, { waId: '9' }, T + 1000)).toMatchObject({ waId: '9', identityAt: T + 1000 });
    const late = { ...base, waId: '9', identityAt: T + 1000 };
    expect(learnIdentity(late, { waId: '1' }, T)).toBe(late);
    expect(learnIdentity({ ...base, waId: '1' }, { waId: '9' }).waId).toBe('1');
  });

  it('tells Bird the live pause only', () => {
    expect(activePause({ ...base, pausedUntil: T + 1, pausedBy: 'api' }, T)).toEqual({ until: new Date(T + 1).toISOString(), by: 'api' });
    expect(activePause({ ...base, pausedUntil: T, pausedBy: 'api' }, T)).toBeNull();
    expect(activePause({ ...base, pausedBy: 'meta_handover' }, T)).toEqual({ until: null, by: 'meta_handover' });
  });
});

describe('facts read from Meta payloads (fixtures)', () => {
  const table: Array<[string, ContactFact[], Record<string, string | undefined>]> = [
    ['message-text.json', [{ type: 'inbound', at: Number(eventsOf('message-text.json')[0]!.timestamp) * 1000 }], {}],
    // System messages are WhatsApp's notices, not the person writing: ids move, the window does not.
    ['message-system-user-changed-number.json', [{ type: 'number_changed', newWaId: '12195555358', at: 1750269342000 }], { waId: '16505551234' }],
    ['message-system-user-changed-user-id.json', [{ type: 'user_id_changed', newUserId: 'US.22775810934471029384', at: 1750269400000 }], { userId: 'US.13491208655302741918' }],
    ['message-system-identity-changed.json', [], {}],
    ['smb-message-echo-text.json', [{ type: 'business_echo', at: 1739321024000, pauseMinutes: 45 }], { waId: '16505551234' }],
    ['messaging-handovers-control-taken.json', [{ type: 'thread_control_lost', at: 1750101000000 }], { waId: '16505551234' }],
    ['messaging-handovers-control-passed.json', [{ type: 'thread_control_back', at: 1750104600000 }], { waId: '16505551234' }],
    ['standby-message-text.json', [{ type: 'inbound', at: 1750102000000 }, { type: 'thread_control_lost', at: 1750102000000 }], { userId: 'US.13491208655302741918' }],
  ];
  it.each(table)('%s', (name, facts, identity) => {
    const [event] = eventsOf(name);
    const observed = observationOf(event!, 45);
    expect(observed?.facts).toEqual(facts);
    expect(observed?.identity).toMatchObject(identity);
  });

  it('a handover change routes by recipient.phone_number_id (it has no metadata)', () => {
    expect(eventsOf('messaging-handovers-control-taken.json')[0]).toMatchObject({ kind: 'account', phoneNumberId: '106540352242922' });
  });

  it('statuses (business sends) say nothing about the window', () => {
    expect(observationOf(eventsOf('status-read.json')[0]!)).toBeUndefined();
    expect(observationOf(eventsOf('status-failed.json')[0]!)).toBeUndefined();
  });

  it('a failed status with 131047 closes the window at its Meta time', () => {
    const json = loadFixture('status-failed.json').json as { entry: Array<{ changes: Array<{ value: { statuses: Array<{ errors: Array<{ code: number }> }> } }> }> };
    json.entry[0]!.changes[0]!.value.statuses[0]!.errors[0]!.code = 131047;
    const observation = observationOf(envelopeToEvents(json)[0]!);
    expect(observation).toMatchObject({ identity: { waId: '16505551234' }, facts: [{ type: 'window_closed', at: 1751142888_000 }] });
  });

  it('the conversation key and FIFO group prefer the BSUID, so a person keeps one group when Meta adds or drops the number', () => {
    const both = eventsOf('message-button-quick-reply-from-user-id.json')[0]!;
    expect(conversationKeyOf(both)).toBe('US.13491208655302741918');
    expect(conversationGroupId(loadFixture('message-button-quick-reply-from-user-id.json').json)).toBe('1122334455667:US.13491208655302741918');
    expect(conversationGroupId(loadFixture('bsuid-message-text-no-from.json').json)).toBe('106540352242922:US.13491208655302741918');
  });

  it('a group message: the group is the conversation', () => {
    const payload = loadFixture('message-text.json').json as { entry: Array<{ changes: Array<{ value: { messages: Array<Record<string, unknown>> } }> }> };
    payload.entry[0]!.changes[0]!.value.messages[0]!.group_id = 'G123';
    const [event] = envelopeToEvents(payload);
    expect(event!.groupId).toBe('G123');
    expect(conversationKeyOf(event!)).toBe('group:G123');
    expect(conversationGroupId(payload)).toMatch(/:group:G123$/);
    expect(observationOf(event!)?.identity).toEqual({ groupId: 'G123' });
  });
});
