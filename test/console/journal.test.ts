import { ConsoleAuth, readCookie, type Credential } from '../../src/console/auth';
import { claimJournal, mergeUpdateExpression, stepsJournal } from '../../src/journal/journal-update';
import { contactHash, displayEvent, inboundOutcome, journalFacts, perMinute, receivedStep } from '../../src/journal/journey';
import type { WhatsAppEvent } from '../../src/meta/event';
import { wamidDigest } from '../../src/privacy/pseudonyms';

const event: WhatsAppEvent = {
  key: 'msg#106540352242922#wamid.ABC',
  kind: 'message',
  field: 'messages',
  phoneNumberId: '106540352242922',
  displayPhoneNumber: '15550783881',
  contact: { userKey: '16505551234', waId: '16505551234', name: 'Sheena' },
  message: { id: 'wamid.ABC', type: 'text', text: 'hello' },
  raw: { big: 'x'.repeat(100) },
};

describe('journal update fragments', () => {
  it.each([
    ['SET #a = :a', 'SET #a = :a, J1 ADD K1'],
    ['SET #a = :a REMOVE #b', 'SET #a = :a, J1 REMOVE #b ADD K1'],
    ['SET #a = :a REMOVE #b, #c ADD #n :one', 'SET #a = :a, J1 REMOVE #b, #c ADD #n :one, K1'],
  ])('merges the journal into %s', (expression, merged) => {
    expect(mergeUpdateExpression(expression, { set: ['J1'], add: ['K1'], names: {}, values: {} })).toBe(merged);
  });

  it('leaves the expression alone without a journal', () => {
    expect(mergeUpdateExpression('SET #a = :a REMOVE #b', undefined)).toBe('SET #a = :a REMOVE #b');
  });

  it('writes the facts once (if_not_exists), skips absent ones, and appends the steps', () => {
    const facts = { ...journalFacts(event, 'line-doc', '2026-11-30T18:00:00.000Z'), requestId: 'r-1', bytes: 456 };
    const update = claimJournal({ ...facts, contactHash: undefined, contact: undefined }, [{ at: '2026-11-30T18:00:01.000Z', step: 'claimed' }]);
    expect(update.set).toContain('#j_lineId = if_not_exists(#j_lineId, :j_lineId)');
    expect(update.set).toContain('#j_journey = list_append(if_not_exists(#j_journey, :j_empty), :j_steps)');
    expect(Object.values(update.names)).not.toContain('contactHash');
    expect(update.values[':j_updatedAt']).toBe('2026-11-30T18:00:01.000Z');
    expect(stepsJournal([{ at: 't', step: 'retried' }], { retries: 1 }).add).toEqual(['#j_retries :j_retries']);
    expect(stepsJournal([], { retries: 0 }).add).toEqual([]);
  });

  it('keeps the normalised event without raw, and the detail view masks numbers but keeps the text', () => {
    const facts = journalFacts(event, 'line-doc', '2026-11-30T18:00:00Z');
    expect(facts).toMatchObject({ lineId: 'line-doc', kind: 'message', type: 'text', wamid: wamidDigest('wamid.ABC'), contact: '…1234', receivedAt: '2026-11-30T18:00:00.000Z' });
    expect(facts.contactHash).toBe(contactHash('+1 650 555 1234'));
    expect(facts.event).not.toContain('xxxx');
    expect(facts.event).not.toContain('wamid.ABC');
    // A record written before the projection held the event whole: the view projects it on the way out.
    const { raw: _raw, ...legacy } = event;
    expect(JSON.stringify(displayEvent(legacy))).not.toMatch(/16505551234|15550783881|wamid\.ABC/);
    const shown = JSON.stringify(displayEvent(JSON.parse(facts.event)));
    expect(shown).toContain('hello');
    expect(shown).not.toContain('16505551234');
    expect(shown).not.toContain('15550783881');
  });

  it('derives received from the record, and the outcome from its state', () => {
    expect(receivedStep({ receivedAt: 'T', requestId: 'r', bytes: 9, lineId: 'l' })).toEqual({ at: 'T', step: 'received', detail: { requestId: 'r', bytes: 9, line: 'l' } });
    expect(receivedStep({})).toBeUndefined();
    expect(inboundOutcome({ status: 'COMPLETED' })).toBe('delivered');
    expect(inboundOutcome({ status: 'PARKED' })).toBe('parked');
    expect(inboundOutcome({ status: 'INPROGRESS', journey: [{ at: 't', step: 'retried' }] })).toBe('retrying');
    expect(inboundOutcome({ status: 'INPROGRESS', journey: [{ at: 't', step: 'claimed' }] })).toBe('in_progress');
  });

  it('buckets events per minute over the window, zeros included, and drops what is outside', () => {
    const now = new Date('2026-11-30T18:10:30Z');
    const buckets = perMinute(
      [
        { at: '2026-11-30T18:10:05Z', outcome: 'delivered' },
        { at: '2026-11-30T18:10:59Z', outcome: 'delivered' },
        { at: '2026-11-30T18:08:00Z', outcome: 'parked' },
        { at: '2026-11-30T17:00:00Z', outcome: 'delivered' },
      ],
      now,
      5,
    );
    expect(buckets.map((b) => [b.minute.slice(11, 16), b.counts])).toEqual([
      ['18:06', {}],
      ['18:07', {}],
      ['18:08', { parked: 1 }],
      ['18:09', {}],
      ['18:10', { delivered: 2 }],
    ]);
  });
});

describe('console sessions', () => {
  let now = Date.parse('2026-11-30T18:00:00Z');
  const auth = new ConsoleAuth({ token: 'a-console-token-of-some-length', sessionHours: 1, clock: () => now });

  it('accepts the bearer and its own sessions, refuses tampered or expired ones naming the problem, and ties CSRF to the session', () => {
    expect(auth.authenticate('Bearer a-console-token-of-some-length', undefined)).toEqual({ ok: true, credential: { via: 'bearer' } });
    expect(auth.authenticate('Bearer wrong', `wa_console_session=x`)).toEqual({ ok: false, problem: 'wrong_token' });
    expect(auth.authenticate(undefined, 'other=1')).toEqual({ ok: false, problem: 'no_credential' });
    const session = auth.issueSession();
    const authentication = auth.authenticate(undefined, `other=1; wa_console_session=${session.value}`);
    expect(authentication).toMatchObject({ ok: true, credential: { via: 'session', csrf: session.csrf } });
    const credential = (authentication as { credential: Credential }).credential;
    expect(auth.checkCsrf(credential, session.csrf)).toBe(true);
    expect(auth.checkCsrf(credential, undefined)).toBe(false);
    expect(auth.checkCsrf(credential, auth.issueSession().csrf)).toBe(false);
    const [v, exp, nonce, mac] = session.value.split('.');
    expect(auth.verifySession([v, Number(exp) + 3600, nonce, mac].join('.'))).toEqual({ ok: false, problem: 'invalid_session' });
    expect(new ConsoleAuth({ token: 'another-token-entirely-here', sessionHours: 1, clock: () => now }).verifySession(session.value)).toEqual({ ok: false, problem: 'invalid_session' });
    expect(auth.verifySession('v1.2.3')).toEqual({ ok: false, problem: 'malformed_session' });
    now += 3_600_001;
    expect(auth.verifySession(session.value)).toEqual({ ok: false, problem: 'expired_session' });
  });

  it('reads one cookie among several', () => {
    expect(readCookie('a=1; wa_console_session=v1.2.3.4; b=2', 'wa_console_session')).toBe('v1.2.3.4');
    expect(readCookie(undefined, 'x')).toBeUndefined();
    // A broken %-escape is kept as sent rather than thrown (it then never verifies).
    expect(readCookie('wa_console_session=%E0%A4', 'wa_console_session')).toBe('%E0%A4');
  });
});
