import { buildFlowBody } from '../../src/bird/flow-request';
import { journalFacts } from '../../src/journal/journey';
import { storedEvent } from '../../src/journal/stored-event';
import { envelopeToEvents } from '../../src/meta/envelope';
import type { WhatsAppEvent } from '../../src/meta/event';
import { contactDigest, eventHandle, wamidDigest } from '../../src/privacy/pseudonyms';
import { TURN_OBJECT, turnEvents, type TurnMessage } from '../../src/worker/turns/turn-message';
import { loadFixture, webhookFixtures } from '../support/fixtures';

/**
 * What the journal stores of an event, on every payload of the Meta corpus: no whole number, no
 * wamid, no URL, no `raw`, whatever the kind or nesting. The identifiers are gathered from the
 * fixture's own JSON (not from the normaliser), so a field the projection forgets is caught.
 */

/** Fields of Meta's JSON that hold a person's or a line's number, a user id, or a message id. */
const IDENTIFYING_FIELDS = new Set([
  'from', 'wa_id', 'recipient_id', 'display_phone_number', 'user_id', 'from_user_id', 'recipient_user_id', 'phone', 'id', 'message_id', 'original_message_id',
  // smb_message_echoes (`to`), messaging_handovers (`sender.phone_number`), Groups API (`group_id`).
  'to', 'to_user_id', 'phone_number', 'group_id',
]);

function identifiers(value: unknown, out = new Set<string>(), field = ''): Set<string> {
  if (Array.isArray(value)) value.forEach((item) => identifiers(item, out, field));
  else if (value !== null && typeof value === 'object') for (const [name, member] of Object.entries(value)) identifiers(member, out, name);
  else if (typeof value === 'string' || typeof value === 'number') {
    const text = String(value);
    const isWamid = text.startsWith('wamid.');
    const isNumberLike = /^\+?[0-9 -]{8,}$/.test(text) && IDENTIFYING_FIELDS.has(field) && !['id'].includes(field);
    if (isWamid || isNumberLike || (field === 'url' && text.startsWith('http'))) out.add(text);
  }
  return out;
}

const stored = (event: WhatsAppEvent) => JSON.stringify(journalFacts(event, 'line-doc', '2026-12-01T10:00:00Z'));

describe('the stored event (mask when writing)', () => {
  const cases = webhookFixtures().flatMap((fixture) => envelopeToEvents(fixture.json).map((event, i) => [`${fixture.name} #${i}`, event, identifiers(fixture.json)] as const));

  it('covers the corpus: numbers, wamids and URLs to look for', () => {
    expect(cases.length).toBeGreaterThan(50);
    expect(cases.filter(([, , secrets]) => [...secrets].some((s) => s.startsWith('wamid.'))).length).toBeGreaterThan(30);
    expect(cases.filter(([, , secrets]) => [...secrets].some((s) => s.startsWith('http'))).length).toBeGreaterThan(0);
  });

  it.each(cases)('%s: no number, wamid, URL, event key or raw survives', (_name, event, secrets) => {
    const json = stored(event);
    for (const secret of secrets) expect(json).not.toContain(secret);
    expect(json).not.toContain(event.key);
    expect(json).not.toMatch(/"raw"/);
    expect(json).not.toMatch(/https?:\/\//);
  });

  it('keeps what a person reads and what lookups hash: text, last 4, digests, the handle', () => {
    const [event] = envelopeToEvents(loadFixture('message-text-reply-context').json);
    const projected = storedEvent(event);
    expect(projected.handle).toBe(eventHandle(event!.key));
    expect(projected.message?.id).toBe(wamidDigest(event!.message!.id));
    expect(projected.message?.replyTo).toBe(wamidDigest(event!.message!.replyToId!));
    expect(projected.message?.text).toBe(event!.message!.text);
    expect(projected.contact).toMatchObject({ lastFour: `…${event!.contact!.waId!.slice(-4)}`, digest: contactDigest(event!.contact!.waId!) });
    const facts = journalFacts(event!, 'line-doc', '2026-12-01T10:00:00Z');
    expect(facts).toMatchObject({ wamid: wamidDigest(event!.message!.id), contactHash: contactDigest(event!.contact!.waId!), contact: `…${event!.contact!.waId!.slice(-4)}` });
  });
});

describe('conversation state (issue 15) in the stored event', () => {
  it.each(['smb-message-echo-text', 'messaging-handovers-control-passed', 'messaging-handovers-control-taken', 'standby-message-text', 'message-system-user-changed-user-id'])(
    '%s: its person is stored as last 4 and digest, no whole id',
    (name) => {
      const fixture = loadFixture(name).json;
      const [event] = envelopeToEvents(fixture);
      expect(event!.contact).toBeDefined();
      const json = stored(event!);
      for (const id of [event!.contact!.waId, event!.contact!.userId].filter((id): id is string => id !== undefined)) expect(json).not.toContain(id);
      expect(storedEvent(event).contact?.digest).toBe(contactDigest(event!.contact!.userKey ?? event!.contact!.waId ?? event!.contact!.userId!));
    },
  );

  it('a group message: the group as last 4 and digest, never its id', () => {
    const payload = loadFixture('message-text').json as { entry: { changes: { value: { messages: Record<string, unknown>[] } }[] }[] };
    payload.entry[0]!.changes[0]!.value.messages[0]!.group_id = 'G-journal-120363025246125486';
    const [event] = envelopeToEvents(payload);
    expect(event!.groupId).toBe('G-journal-120363025246125486');
    const projected = storedEvent(event);
    expect(projected.group).toEqual({ lastFour: `…5486`, digest: contactDigest('G-journal-120363025246125486') });
    expect(stored(event!)).not.toContain('G-journal-120363025246125486');
  });

  it("a turn's message keeps the conversation Bird was told: opaque contact id, window, pause", () => {
    const text = envelopeToEvents(loadFixture('message-text').json)[0]!;
    const conversation = { contactId: 'ct_0123456789abcdef', windowOpenUntil: '2026-12-02T10:00:00.000Z', paused: { until: null, by: 'business_app' as const } };
    const body = buildFlowBody({ lineId: 'line-doc', target: undefined as never, event: text, receivedAt: '2026-12-01T10:00:00Z', conversation });
    const message: TurnMessage = {
      object: TURN_OBJECT,
      turn: { id: 't-2', key: 'turn#line-doc#t-2', lineId: 'line-doc', phoneNumberId: text.phoneNumberId!, contact: text.contact ?? null, cut: 'quiet', messages: [body] },
    };
    const turn = turnEvents(JSON.parse(JSON.stringify(message)))![0]!;
    const projected = storedEvent(turn);
    expect(projected.turn?.messages[0]?.conversation).toEqual(conversation);
    expect(stored(turn)).not.toContain(text.contact!.waId!);
  });
});

describe('a stored turn', () => {
  // A URL as the presigner signs it under a task role: the session token makes up most of it.
  const SIGNED = `https://bucket.s3.eu-west-1.amazonaws.com/media/line-doc/2026/12/01/wd_x/m.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIA0000%2F20261201%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20261201T100000Z&X-Amz-Expires=900&X-Amz-Security-Token=IQoJb3JpZ2luX2VjE${'A'.repeat(1100)}&X-Amz-Signature=${'f'.repeat(64)}&X-Amz-SignedHeaders=host`;
  function turnOf(count: number): WhatsAppEvent {
    const image = envelopeToEvents(loadFixture('message-image').json)[0]!;
    const text = envelopeToEvents(loadFixture('message-text').json)[0]!;
    const bodies = Array.from({ length: count }, (_, i) => {
      const event = i === 1 ? image : { ...text, key: `${text.key}-${i}`, message: { ...text.message!, id: `${text.message!.id}${i}`, text: `message ${i} of the burst, as a person writes it` } };
      const media = i === 1 ? { url: SIGNED, s3Key: 'media/line-doc/2026/12/01/wd_x/m.jpg', sha256: 'a'.repeat(64), size: 48_213, mimeType: 'image/jpeg' } : undefined;
      return buildFlowBody({ lineId: 'line-doc', target: undefined as never, event, receivedAt: '2026-12-01T10:00:00Z', media });
    });
    const message: TurnMessage = {
      object: TURN_OBJECT,
      turn: { id: 't-1', key: 'turn#line-doc#t-1', lineId: 'line-doc', phoneNumberId: text.phoneNumberId!, contact: text.contact ?? null, cut: 'quiet', messages: bodies },
    };
    return turnEvents(JSON.parse(JSON.stringify(message)))![0]!;
  }

  it('holds its messages projections: no number, wamid, signature or raw, and is a fraction of its FlowBodies', () => {
    const turn = turnOf(5);
    const secrets = identifiers(turn.turn!.messages);
    expect([...secrets].some((s) => s.startsWith('wamid.'))).toBe(true);
    const json = stored(turn);
    for (const secret of secrets) expect(json).not.toContain(secret);
    expect(json).not.toContain('X-Amz-Signature');
    expect(json).not.toContain('X-Amz-Security-Token');
    expect(json).not.toMatch(/"raw"/);
    const projected = JSON.parse(journalFacts(turn, 'line-doc', '2026-12-01T10:00:00Z').event);
    expect(projected.turn.messages).toHaveLength(5);
    expect(projected.turn.messages[1].message.media).toEqual({ kind: 'image', mimeType: 'image/jpeg', size: 48_213, caption: expect.any(String) });
    // Before: the event without its top-level raw, FlowBodies whole (what journalFacts stored until now).
    const { raw: _raw, ...whole } = turn;
    const before = Buffer.byteLength(JSON.stringify(whole));
    const after = Buffer.byteLength(journalFacts(turn, 'line-doc', '2026-12-01T10:00:00Z').event);
    console.log(`[stored turn] 5 messages with an image: ${before} bytes before, ${after} bytes after`);
    expect(after * 2).toBeLessThan(before);
  });
});
