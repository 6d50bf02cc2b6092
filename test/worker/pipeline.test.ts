import { createHash } from 'node:crypto';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { DeleteCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { EventKind } from '../../src/meta/event';
import { REDRIVE_POLICY_REASON } from '../../src/queue/dlq';
import { contactDigest, wamidDigest } from '../../src/privacy/pseudonyms';
import { webhookFixtures } from '../support/fixtures';
import { waitFor } from '../support/child';
import { expectedContentKey, valueAt } from '../meta/fixture-events';
import { BIRD_STANDIN_FLOW_SECRET } from '../../src/local/bird-standin';
import { APP_SECRET } from '../support/ingress';
import {
  GRAPH_TOKEN,
  SENDER,
  LINES,
  birdRows,
  countByKey,
  lineFor,
  mediaMessage,
  parkedRows,
  startRemoteStandIns,
  startWorkerRig,
  textMessage,
  webhookPayload,
  type RemoteStandIns,
  type WorkerRig,
} from '../support/worker';
import { eventHandle } from '../../src/privacy/pseudonyms';

let remote: RemoteStandIns;

beforeAll(async () => {
  remote = await startRemoteStandIns();
});
afterAll(async () => remote.stop());

/** A content-hash key, computed by the meta tests' independent oracle from the parts written here. */
function hashed(
  kind: EventKind,
  parts: { field: string; wabaId?: string; phoneNumberId?: string; timestamp?: string; raw: string },
): (fixture: unknown) => string {
  return (fixture) => expectedContentKey(kind, { ...parts, raw: valueAt(fixture, parts.raw) });
}

type Key = string | ((fixture: unknown) => string);
/** [kind, message type / status / field, Idempotency-Key] of one Bird call. */
type BirdRow = [kind: EventKind, subject: string, key: Key];
/** [reason, eventKey] of one event parked in the DLQ. */
type ParkedRow = [reason: string, key: Key];

const DOC_WABA = LINES.doc.wabaId;
const DOC = LINES.doc.phoneNumberId;
const PYWA = LINES.pywa.phoneNumberId;
const WAMID_4RGA = 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=';
const WAMID_MXMAA = 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=';
const PLACEHOLDER_KEY = 'msg#PHONE_NUMBER_ID#wamid.ID';

/**
 * Every payload fixture, read by hand: what Bird must receive (lines are registered for
 * 106540352242922, 1122334455667 and 102944729380254) and what must be parked. Placeholder
 * phone_number_ids are `unrouted`; account changes (no phone_number_id) go to the lines of their
 * WABA (`entry.id`) under a per-line key, and are `unrouted` when no line has that WABA.
 */
const EXPECTED: Record<string, { bird: BirdRow[]; parked?: ParkedRow[] }> = {
  'account-update-deleted': {
    bird: [['account', 'account_update', onLine(hashed('account', { field: 'account_update', wabaId: DOC_WABA, timestamp: '1743451903', raw: 'entry.0.changes.0.value' }), 'line-doc')]],
  },
  'account-update-violation': {
    bird: [['account', 'account_update', onLine(hashed('account', { field: 'account_update', wabaId: DOC_WABA, timestamp: '1743451903', raw: 'entry.0.changes.0.value' }), 'line-doc')]],
  },
  // The same wamid twice in one payload is one event: parked once.
  'batch-two-changes-two-texts': { bird: [], parked: [['unrouted', PLACEHOLDER_KEY]] },
  'bsuid-message-text-no-from': { bird: [['message', 'text', `msg#${DOC}#${WAMID_4RGA}`]] },
  'bsuid-status-delivered-no-phone': { bird: [['status', 'delivered', `status#${WAMID_MXMAA}#delivered`]] },
  'bsuid-status-delivered-username': { bird: [['status', 'delivered', `status#${WAMID_MXMAA}#delivered`]] },
  'history-multi-message': {
    bird: [['account', 'history', hashed('account', { field: 'history', wabaId: DOC_WABA, phoneNumberId: DOC, raw: 'entry.0.changes.0.value' })]],
  },
  'message-audio-file-forwarded': { bird: [['message', 'audio', `msg#${PYWA}#wamid.xyzxyz`]] },
  'message-audio-voice': { bird: [['message', 'audio', `msg#${DOC}#${WAMID_4RGA}`]] },
  'message-button-quick-reply-from-user-id': { bird: [['message', 'button', `msg#${PYWA}#wamid.xsidjx`]] },
  'message-button-template-quick-reply': { bird: [['message', 'button', `msg#${DOC}#${WAMID_MXMAA}`]] },
  'message-contacts': { bird: [['message', 'contacts', `msg#${DOC}#${WAMID_4RGA}`]] },
  'message-document': { bird: [['message', 'document', `msg#${DOC}#${WAMID_4RGA}`]] },
  'message-edit': { bird: [['message', 'edit', `msg#${DOC}#${WAMID_MXMAA}`]] },
  'message-image-with-url': { bird: [['message', 'image', `msg#${PYWA}#wamid.xyzxyz`]] },
  'message-image': { bird: [['message', 'image', `msg#${DOC}#${WAMID_4RGA}`]] },
  'message-interactive-button-reply': {
    bird: [['message', 'interactive', `msg#${DOC}#wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTZBQzg0MzQ4QjRCM0NGNkVGOAA=`]],
  },
  'message-interactive-list-reply': { bird: [['message', 'interactive', `msg#${DOC}#${WAMID_MXMAA}`]] },
  'message-interactive-nfm-reply-numeric-timestamp': { bird: [], parked: [['unrouted', PLACEHOLDER_KEY]] },
  'message-interactive-nfm-reply': { bird: [['message', 'interactive', `msg#${PYWA}#wamid.wegrchytvwcggt==`]] },
  'message-location-forwarded': { bird: [['message', 'location', `msg#${PYWA}#wamid.xyzxyz`]] },
  'message-location': { bird: [['message', 'location', `msg#${DOC}#${WAMID_MXMAA}`]] },
  'message-order': { bird: [['message', 'order', `msg#${DOC}#${WAMID_MXMAA}`]] },
  'message-reaction-empty-emoji': { bird: [['message', 'reaction', `msg#${PYWA}#wamid.xyzxyz`]] },
  'message-reaction-removed': { bird: [['message', 'reaction', `msg#${DOC}#${WAMID_MXMAA}`]] },
  'message-reaction': { bird: [['message', 'reaction', `msg#${DOC}#${WAMID_MXMAA}`]] },
  'message-revoke': { bird: [['message', 'revoke', `msg#${DOC}#${WAMID_MXMAA}`]] },
  'message-sticker-animated': { bird: [['message', 'sticker', `msg#${PYWA}#wamid.xyzxyz`]] },
  'message-sticker': { bird: [['message', 'sticker', `msg#${DOC}#${WAMID_4RGA}`]] },
  'message-system-identity-changed': { bird: [['message', 'system', `msg#${PYWA}#wamid.xyzxyz`]] },
  'message-system-user-changed-user-id': { bird: [['message', 'system', `msg#${DOC}#wamid.HBgLMTY1MDM4Nzk0MzkVAgASGAoxMTgyMDg2MjY4AA==`]] },
  // Conversation-state changes reach Bird as account events of their line (the handover's line is its recipient.phone_number_id).
  'smb-message-echo-text': {
    bird: [['account', 'smb_message_echoes', hashed('account', { field: 'smb_message_echoes', wabaId: DOC_WABA, phoneNumberId: DOC, timestamp: '1739321024', raw: 'entry.0.changes.0.value' })]],
  },
  'messaging-handovers-control-taken': {
    bird: [['account', 'messaging_handovers', hashed('account', { field: 'messaging_handovers', wabaId: DOC_WABA, phoneNumberId: DOC, timestamp: '1750101000', raw: 'entry.0.changes.0.value' })]],
  },
  'messaging-handovers-control-passed': {
    bird: [['account', 'messaging_handovers', hashed('account', { field: 'messaging_handovers', wabaId: DOC_WABA, phoneNumberId: DOC, timestamp: '1750104600', raw: 'entry.0.changes.0.value' })]],
  },
  'standby-message-text': {
    bird: [['account', 'standby', hashed('account', { field: 'standby', wabaId: DOC_WABA, phoneNumberId: DOC, timestamp: '1750102000', raw: 'entry.0.changes.0.value' })]],
  },
  'message-system-user-changed-number': {
    bird: [['message', 'system', `msg#${DOC}#wamid.HBgLMTk4MzU1NTE5NzQVAgASGAoxMTgyMDg2MjY3AA==`]],
  },
  'message-text-ctwa-referral': { bird: [['message', 'text', `msg#${DOC}#wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA=`]] },
  'message-text-frequently-forwarded': { bird: [['message', 'text', `msg#${PYWA}#wamid.xyzxyz`]] },
  'message-text-product-inquiry': { bird: [['message', 'text', `msg#${DOC}#wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTA2NTUwRkNEMDdFQjJCRUU0NQA=`]] },
  'message-text-reply-context': { bird: [['message', 'text', `msg#${PYWA}#wamid.xyzxyz`]] },
  'message-text': { bird: [['message', 'text', `msg#${DOC}#${WAMID_4RGA}`]] },
  'message-unsupported-poll': { bird: [['message', 'unsupported', `msg#${PYWA}#wamid.xyzxyz`]] },
  'message-unsupported': { bird: [['message', 'unsupported', `msg#${DOC}#${WAMID_MXMAA}`]] },
  'message-video': { bird: [['message', 'video', `msg#${DOC}#${WAMID_4RGA}`]] },
  'odd-account-update-misplaced-field-object': {
    bird: [],
    parked: [['unrouted', hashed('account', { field: 'account_update', wabaId: '2949482758682047', timestamp: '1745337174', raw: 'entry.0.changes.0.value' })]],
  },
  'odd-bsuid-only-no-from': { bird: [], parked: [['unrouted', PLACEHOLDER_KEY]] },
  'odd-button-with-referral-and-forwarded-context': { bird: [], parked: [['unrouted', PLACEHOLDER_KEY]] },
  'odd-contacts-without-profile': { bird: [], parked: [['unrouted', PLACEHOLDER_KEY]] },
  'odd-message-interactive-without-body': {
    bird: [
      ['message', 'interactive', `msg#${PYWA}#wamid.wegrchytvwcggt=`],
      ['error', 'messages', perRequest(hashed('error', { field: 'messages', wabaId: '1234567890987654321', phoneNumberId: PYWA, raw: 'entry.0.changes.0.value.errors.0' }))],
    ],
  },
  'odd-message-type-unknown': { bird: [], parked: [['unrouted', PLACEHOLDER_KEY]] },
  'odd-status-failed-minimal-errors': { bird: [['status', 'failed', 'status#amid.ID#failed']] },
  // No registered line has this WABA: unrouted, like any account change of a foreign WABA.
  'phone-number-quality-update-flagged': {
    bird: [],
    parked: [['unrouted', hashed('account', { field: 'phone_number_quality_update', wabaId: '495709166956424', timestamp: '1731617831', raw: 'entry.0.changes.0.value' })]],
  },
  'status-delivered-cbp': { bird: [['status', 'delivered', 'status#wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA#delivered']] },
  'status-failed-130472': { bird: [['status', 'failed', 'status#wamid.xyzxyz#failed']] },
  'status-failed': { bird: [['status', 'failed', 'status#wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA#failed']] },
  'status-group-read': { bird: [], parked: [['unrouted', 'status#<WHATSAPP_MESSAGE_ID>#read#p:770dbc756f4df482']] },
  'status-played': { bird: [['status', 'played', 'status#wamid.xyzxyz#played']] },
  'status-read': { bird: [['status', 'read', 'status#wamid.xyzxyz#read']] },
  'status-sent-biz-opaque-callback-data': { bird: [['status', 'sent', 'status#wamid.xyzxyz#sent']] },
  'status-sent-minimal': { bird: [['status', 'sent', `status#${WAMID_MXMAA}#sent`]] },
  'status-sent-pmp-pricing': { bird: [['status', 'sent', `status#${WAMID_MXMAA}#sent`]] },
  'template-status-approved': {
    bird: [['account', 'message_template_status_update', onLine(hashed('account', { field: 'message_template_status_update', wabaId: DOC_WABA, timestamp: '1751247548', raw: 'entry.0.changes.0.value' }), 'line-doc')]],
  },
  'value-errors-rate-limit': {
    bird: [['error', 'messages', perRequest(hashed('error', { field: 'messages', wabaId: DOC_WABA, phoneNumberId: DOC, raw: 'entry.0.changes.0.value.errors.0' }))]],
  },
};

/** Fixtures whose message carries media: Bird must get it as an S3 object, never Meta's id or URL. */
const WITH_MEDIA = new Set([
  'message-audio-file-forwarded',
  'message-audio-voice',
  'message-document',
  'message-edit',
  'message-image-with-url',
  'message-image',
  'message-sticker-animated',
  'message-sticker',
  'message-video',
]);

const resolveKey = (key: Key, fixture: unknown) => (typeof key === 'string' ? key : key(fixture));
/** A Meta error notification: its content key plus the ingress request that carried it (a uuid per POST). */
function perRequest(key: Key): Key {
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return (fixture) => expect.stringMatching(new RegExp(`^${escape(resolveKey(key, fixture))}#req:[0-9a-f-]{36}$`)) as unknown as string;
}
/** An account event delivered to one of its WABA's lines: the key names the line. */
function onLine(key: Key, lineId: string): Key {
  return (fixture) => `${resolveKey(key, fixture)}#line:${lineId}`;
}
const lineIdOf = (phoneNumberId: unknown) => Object.values(LINES).find((l) => l.phoneNumberId === phoneNumberId)?.lineId;
type FlowBody = { line: { lineId: string; phoneNumberId?: string }; message?: { text?: string; media?: Record<string, unknown> } };
const flowBody = (call: { body: Record<string, unknown> }) => call.body as FlowBody;

describe('every webhook fixture through the ingress, SQS and the worker to Bird', () => {
  const fixtures = webhookFixtures();
  let rig: WorkerRig;

  beforeAll(async () => {
    rig = await startWorkerRig(remote);
  });
  afterAll(async () => rig.stop());

  it('has a row for every fixture', () => {
    expect(fixtures.map((f) => f.name).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  // Fixtures share wamids (message-text and message-image, wamid.ID…): each gets fresh dedupe and Bird state.
  it.each(fixtures.map((f) => [f.name, f] as const))('%s', async (name, fixture) => {
    await rig.clearDedupe();
    remote.reset();
    const handledBefore = await rig.handled();
    expect(await rig.post(fixture.raw)).toBe(200);
    await rig.waitForHandled(handledBefore + 1);

    const calls = remote.bird.received();
    const expected = EXPECTED[name]!.bird.map(([kind, subject, key]) => [kind, subject, resolveKey(key, fixture.json)]);
    expect(birdRows(calls)).toEqual(expected);
    for (const call of calls) {
      const body = flowBody(call);
      // Events route by their phone_number_id; account events (none) by WABA, the line named in their key.
      const expectedLine = body.line.phoneNumberId !== undefined ? lineIdOf(body.line.phoneNumberId) : /#line:([\w-]+)$/.exec(call.idempotencyKey)?.[1];
      expect(body.line.lineId).toBe(expectedLine);
      const media = body.message?.media;
      if (WITH_MEDIA.has(name)) {
        expect(media).toMatchObject({ url: expect.stringContaining(rig.config.aws.endpoints.s3!), s3Key: expect.stringMatching(`^media/${body.line.lineId}/`) });
        expect(media?.sha256).toMatch(/^[0-9a-f]{64}$/);
      } else {
        expect(media).toBeUndefined();
      }
    }
  });

  it('parked exactly the unrouted events, each with its reason and key', async () => {
    const byBody = new Map(fixtures.map((f) => [f.raw.toString('utf8'), f] as const));
    expect(byBody.size).toBe(fixtures.length); // bodies are distinct, so a DLQ body names its fixture
    const actual: Record<string, [string, string | undefined][]> = {};
    for (const entry of await rig.dlq.list()) {
      const fixture = byBody.get(entry.body);
      const name = fixture?.name ?? `unknown body ${entry.body.slice(0, 60)}`;
      expect(entry.lineId).toBeUndefined();
      (actual[name] ??= []).push([entry.reason, entry.eventKey]);
    }
    const expected: Record<string, [string, string | undefined][]> = {};
    for (const fixture of fixtures) {
      const parked = EXPECTED[fixture.name]?.parked ?? [];
      if (parked.length > 0) expected[fixture.name] = parked.map(([reason, key]) => [reason, resolveKey(key, fixture.json)]);
    }
    const sorted = (record: Record<string, [string, string | undefined][]>) =>
      Object.fromEntries(Object.entries(record).map(([k, rows]) => [k, parkedRows(rows.map(([reason, eventKey]) => ({ reason, eventKey })))]));
    expect(sorted(actual)).toEqual(sorted(expected));
  });

  it('logged no whole phone number, token or secret while handling every fixture', () => {
    const phoneNumbers = new Set<string>();
    for (const fixture of fixtures) {
      for (const m of fixture.raw.toString('utf8').matchAll(/"(?:display_phone_number|wa_id|from|recipient_id|phone)"\s*:\s*"\+?([0-9 ]{8,})"/g)) phoneNumbers.add(m[1]!.replace(/ /g, ''));
    }
    expect(phoneNumbers.size).toBeGreaterThan(5);
    const logs = rig.logs.text();
    expect(rig.logs.lines.length).toBeGreaterThan(fixtures.length);
    for (const phone of phoneNumbers) expect(logs).not.toContain(phone);
    for (const secret of [BIRD_STANDIN_FLOW_SECRET, GRAPH_TOKEN, APP_SECRET]) expect(logs).not.toContain(secret);
    // A wamid is base64 of a protobuf holding the sender's number: only its tail may be logged.
    const wamids = new Set(fixtures.flatMap((f) => [...f.raw.toString('utf8').matchAll(/"(wamid\.[A-Za-z0-9+/_=-]{12,})"/g)].map((m) => m[1]!)));
    expect(wamids.size).toBeGreaterThan(5);
    expect(logs).toContain('wamid.…');
    for (const wamid of wamids) expect(logs).not.toContain(wamid);
  });

  it('delivers a wamid that appears twice in one payload once: the first (batch-two-changes-two-texts on a real line)', async () => {
    await rig.clearDedupe();
    remote.reset();
    const raw = fixtures.find((f) => f.name === 'batch-two-changes-two-texts')!.raw.toString('utf8').replaceAll('"PHONE_NUMBER_ID"', `"${DOC}"`);
    const handledBefore = await rig.handled();
    expect(await rig.post(raw)).toBe(200);
    await rig.waitForHandled(handledBefore + 1);
    const calls = remote.bird.received();
    expect(birdRows(calls)).toEqual([['message', 'text', `msg#${DOC}#wamid.ID`]]);
    expect(flowBody(calls[0]!).message?.text).toBe('MESSAGE_BODY');
    expect(await rig.metric('wa_ingress_dedupe_claims_total', { outcome: 'duplicate' })).toBeGreaterThanOrEqual(1);
  });
});

/** Waits until every message is off the main queue (deleted), so nothing further can reach Bird. */
async function settled(rig: WorkerRig, timeoutMs = 15_000): Promise<void> {
  await waitFor(async () => (await rig.queueDepth()) === 0, timeoutMs, 'the main queue to empty');
}

const sha256Hex = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const today = () => new Date().toISOString().slice(0, 10).replaceAll('-', '/');

describe('worker against the stand-ins', () => {
  let rig: WorkerRig | undefined;

  beforeEach(() => remote.reset());
  afterEach(async () => {
    await rig?.stop();
    rig = undefined;
  });

  it('3 entries × 2 changes × 2 messages give 12 Bird calls, each on the line of its change', async () => {
    rig = await startWorkerRig(remote);
    const expected: [string, string][] = [];
    const entries = [0, 1, 2].map((e) => ({
      changes: [0, 1].map((c) => {
        const line = c === 0 ? LINES.doc : LINES.pywa;
        const wamids = [0, 1].map((m) => `wamid.grid-${e}-${c}-${m}`);
        for (const wamid of wamids) expected.push([`msg#${line.phoneNumberId}#${wamid}`, line.lineId]);
        return { phoneNumberId: line.phoneNumberId, messages: wamids.map((w) => textMessage(w)) };
      }),
    }));
    expect(await rig.post(webhookPayload(entries))).toBe(200);
    await waitFor(async () => remote.bird.received().length >= 12, 10_000, '12 Bird calls');
    await settled(rig);
    const calls = remote.bird.received();
    expect(calls.map((c) => [c.idempotencyKey, flowBody(c).line.lineId])).toEqual(expected);
    expect(await rig.metric('wa_ingress_worker_messages_deleted_total')).toBe(1);
  });

  it('delivers an account event of the unified URL to every active line of its WABA, once each', async () => {
    const sibling = { lineId: 'line-doc-2', phoneNumberId: '5550002', wabaId: DOC_WABA, displayPhoneNumber: '15550000002' };
    const retired = { lineId: 'line-doc-3', phoneNumberId: '5550003', wabaId: DOC_WABA, displayPhoneNumber: '15550000003' };
    rig = await startWorkerRig(remote, {
      lines: [lineFor('doc', remote.bird.flowUrl()), lineFor(sibling, remote.bird.flowUrl()), { ...lineFor(retired, remote.bird.flowUrl()), active: false }],
    });
    const template = webhookFixtures().find((f) => f.name === 'template-status-approved')!;
    expect(await rig.post(template.raw)).toBe(200);
    expect(await rig.post(template.raw)).toBe(200); // Meta's retry
    await rig.waitForHandled(2);
    await settled(rig);
    const calls = remote.bird.received();
    expect(calls.map((c) => flowBody(c).line.lineId).sort()).toEqual(['line-doc', 'line-doc-2']);
    expect(new Set(calls.map((c) => c.idempotencyKey)).size).toBe(2);
    for (const call of calls) expect(call.idempotencyKey).toMatch(new RegExp(`^account#sha256:[0-9a-f]{64}#line:${flowBody(call).line.lineId}$`));
    expect(await rig.dlq.list()).toEqual([]);
  });

  it('the same payload posted three times at once reaches Bird once per event', async () => {
    rig = await startWorkerRig(remote);
    const wamids = ['wamid.thrice-1', 'wamid.thrice-2', 'wamid.thrice-3', 'wamid.thrice-4'];
    const body = webhookPayload([{ changes: [{ phoneNumberId: DOC, messages: wamids.map((w) => textMessage(w)) }] }]);
    expect(await Promise.all([rig.post(body), rig.post(body), rig.post(body)])).toEqual([200, 200, 200]);
    await rig.waitForHandled(3);
    await settled(rig); // messages that met a claim held by another come back once its lease is over
    const counts = countByKey(remote.bird.received());
    expect(Object.fromEntries(counts)).toEqual(Object.fromEntries(wamids.map((w) => [`msg#${DOC}#${w}`, 1])));
    expect(await rig.metric('wa_ingress_worker_messages_deleted_total')).toBe(3);
    expect(await rig.dlq.list()).toEqual([]);
  });

  it('keeps renewing the claim while an event takes longer than its lease, so a copy arriving meanwhile is not delivered again', async () => {
    rig = await startWorkerRig(remote, { env: { BIRD_TIMEOUT_MS: '12000' } });
    remote.bird.failNext(1, { delayMs: 8_000 }); // answered normally, 8 s late: past the 5 s lease
    const body = webhookPayload([{ changes: [{ phoneNumberId: DOC, messages: [textMessage('wamid.long-haul')] }] }]);
    expect(await rig.post(body)).toBe(200);
    await waitFor(async () => remote.bird.attempts().length > 0, 10_000, 'the slow delivery to start');
    await new Promise((r) => setTimeout(r, 6_000));
    expect(await rig.post(body)).toBe(200); // Meta's retry of the same payload, after the first lease would have ended
    await rig.waitForHandled(2);
    await settled(rig);
    expect(remote.bird.attempts()).toHaveLength(1);
    expect(birdRows(remote.bird.received())).toEqual([['message', 'text', `msg#${DOC}#wamid.long-haul`]]);
  }, 40_000);

  it('Bird answering 429 with Retry-After: 1 then 200: delivered once, after waiting', async () => {
    rig = await startWorkerRig(remote);
    remote.bird.failNext(1, { status: 429, retryAfter: 1 });
    expect(await rig.post(webhookPayload([{ changes: [{ phoneNumberId: DOC, messages: [textMessage('wamid.slow-down')] }] }]))).toBe(200);
    let firstAttemptAt = 0;
    await waitFor(async () => {
      if (!firstAttemptAt && remote.bird.attempts().length > 0) firstAttemptAt = Date.now();
      return remote.bird.received().length > 0;
    }, 10_000, 'the delivery after the 429');
    const waitedMs = Date.now() - firstAttemptAt;
    await settled(rig);
    expect(remote.bird.attempts().map((a) => a.status)).toEqual([429, 202]);
    expect(birdRows(remote.bird.received())).toEqual([['message', 'text', `msg#${DOC}#wamid.slow-down`]]);
    expect(waitedMs).toBeGreaterThanOrEqual(900); // polled every 50 ms: the client waited the full second
  });

  it('Bird answering 500 forever: the redrive policy moves the message to the DLQ; redriven once Bird is back, delivered once', async () => {
    rig = await startWorkerRig(remote, {
      aws: { maxReceiveCount: 2 },
      custom: { bird: { retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 20 }, breaker: { consecutiveFailures: 100 } }, retryBaseSeconds: 1, retryMaxSeconds: 1 },
    });
    remote.bird.failAlways({ status: 500 });
    const key = `msg#${DOC}#wamid.bird-down`;
    expect(await rig.post(webhookPayload([{ changes: [{ phoneNumberId: DOC, messages: [textMessage('wamid.bird-down')] }] }]))).toBe(200);

    let parked: Awaited<ReturnType<WorkerRig['dlq']['list']>> = [];
    await waitFor(async () => (parked = await rig!.dlq.list()).length > 0, 15_000, 'the message in the DLQ');
    // Retryable failures are never parked by the pipeline: SQS moved it after maxReceiveCount (2) receives.
    expect(parked.map((e) => [e.reason, e.eventKey])).toEqual([[REDRIVE_POLICY_REASON, undefined]]);
    expect(await rig.metric('wa_ingress_worker_parked_total')).toBe(0);
    // Each receive tried Bird twice (maxAttempts 2) and then gave the message back; no more than 2 receives.
    const statuses = remote.bird.attempts().map((a) => a.status);
    expect(statuses.every((s) => s === 500)).toBe(true);
    expect([2, 4]).toContain(statuses.length);
    expect(await rig.metric('wa_ingress_worker_messages_retried_total', { cause: 'handler' })).toBe(statuses.length / 2);
    expect(remote.bird.received()).toEqual([]);
    // The claim was given back, so the redriven event is not taken for a duplicate.
    const claim = await rig.aws.clients.documents.send(new GetCommand({ TableName: rig.config.dynamodb.dedupeTable, Key: { pk: eventHandle(key) } }));
    expect(claim.Item?.status).not.toBe('COMPLETED');
    expect(await rig.metric('wa_ingress_dedupe_releases_total', { outcome: 'released' })).toBe(statuses.length / 2);

    remote.bird.recover();
    expect((await rig.dlq.redrive({ all: true })).redriven).toHaveLength(1);
    await waitFor(async () => remote.bird.received().length > 0, 10_000, 'the redriven delivery');
    await settled(rig);
    expect(Object.fromEntries(countByKey(remote.bird.received()))).toEqual({ [key]: 1 });
    expect(await rig.dlq.list()).toEqual([]);
  });

  describe('media', () => {
    const post = (r: WorkerRig, messages: Record<string, unknown>[]) => r.post(webhookPayload([{ changes: [{ phoneNumberId: DOC, messages }] }]));

    it('a good image reaches Bird as a presigned S3 URL that serves the bytes, with sha256, size and s3Key', async () => {
      rig = await startWorkerRig(remote);
      const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) % 251));
      remote.graph.addMedia('7001', { body: bytes, mimeType: 'image/jpeg' });
      expect(await post(rig, [mediaMessage('image', 'wamid.good-image', '7001', 'image/jpeg')])).toBe(200);
      await waitFor(async () => remote.bird.received().length > 0, 10_000, 'the image at Bird');
      const media = flowBody(remote.bird.received()[0]!).message?.media as { url: string; sha256: string; size: number; s3Key: string; mimeType: string };
      expect(media).toMatchObject({
        sha256: sha256Hex(bytes),
        size: bytes.length,
        s3Key: `media/line-doc/${contactDigest(SENDER)}/${today()}/${wamidDigest('wamid.good-image')}/7001.jpg`,
        mimeType: 'image/jpeg',
      });
      const download = await fetch(media.url);
      expect(download.status).toBe(200);
      expect(Buffer.from(await download.arrayBuffer()).equals(bytes)).toBe(true);
      expect(await rig.headObject(media.s3Key)).toEqual({ found: true, sha256: sha256Hex(bytes), size: bytes.length });
      // The line's token went to Graph (lookup and download), both on the allowed host.
      // (The read/typing call that follows the delivery goes to /messages: not a media request.)
      expect(remote.graph.requests().filter((r) => r.kind !== 'send').map((r) => [r.kind, r.authorization, r.status])).toEqual([
        ['lookup', true, 200],
        ['download', true, 200],
      ]);
    });

    it('a sha256 mismatch stores nothing (not even a multipart upload): HeadObject says NotFound, and the message is retried, not delivered', async () => {
      rig = await startWorkerRig(remote);
      // 6 MiB, so the upload is multipart and its first part is already in S3 when the hash fails.
      remote.graph.addMedia('7002', { body: { size: 6 * 1024 * 1024, seed: 'mismatch' }, mimeType: 'application/pdf', sha256Override: 'ab'.repeat(32) });
      expect(await post(rig, [mediaMessage('document', 'wamid.bad-hash', '7002', 'application/pdf')])).toBe(200);
      await waitFor(async () => (await rig!.metric('wa_ingress_worker_messages_retried_total')) >= 1, 15_000, 'the failed attempt');
      expect(await rig.metric('wa_ingress_media_downloads_total', { outcome: 'media_sha256_mismatch' })).toBe(1);
      expect(remote.graph.requests().filter((r) => r.kind === 'download').map((r) => r.status)).toEqual([200]);
      expect(await rig.headObject(`media/line-doc/${contactDigest(SENDER)}/${today()}/${wamidDigest('wamid.bad-hash')}/7002.pdf`)).toMatchObject({ found: false });
      expect(await rig.objects('media/')).toEqual([]);
      expect(remote.bird.attempts()).toEqual([]);
      expect(await rig.dlq.list()).toEqual([]); // retryable: Meta may serve the right bytes next time
    });

    it('files no redrive could fetch (too large, announced or cut off while streaming; no sha256) are delivered without the file, with text and media.error, and store nothing', async () => {
      rig = await startWorkerRig(remote);
      const cap = 5 * 1024 * 1024;
      remote.graph.addMedia('7003', { body: { size: cap + 1, seed: 'honest' }, mimeType: 'image/jpeg' });
      remote.graph.addMedia('7004', { body: { size: cap + 64 * 1024, seed: 'liar' }, mimeType: 'image/jpeg', fileSizeOverride: 1000, omitContentLength: true });
      remote.graph.addMedia('7009', { body: Buffer.from('%PDF unverifiable'), mimeType: 'application/pdf', omitSha256: true });
      const captioned = mediaMessage('image', 'wamid.big-honest', '7003', 'image/jpeg');
      (captioned.image as Record<string, unknown>).caption = 'our broken pipe';
      expect(
        await post(rig, [captioned, mediaMessage('image', 'wamid.big-liar', '7004', 'image/jpeg'), mediaMessage('document', 'wamid.no-hash', '7009', 'application/pdf')]),
      ).toBe(200);
      await rig.waitForHandled(1);
      await settled(rig);
      expect(await rig.dlq.list()).toEqual([]);
      // The honest one is refused on Graph's file_size, before any download.
      expect(remote.graph.requests().filter((r) => r.kind !== 'send').map((r) => [r.kind, r.mediaId])).toEqual([
        ['lookup', '7003'],
        ['lookup', '7004'],
        ['download', '7004'],
        ['lookup', '7009'],
      ]);
      expect(await rig.objects('media/')).toEqual([]);
      expect(remote.bird.received().map((c) => [c.idempotencyKey, flowBody(c).message?.text, flowBody(c).message?.media])).toEqual([
        [`msg#${DOC}#wamid.big-honest`, 'our broken pipe', { kind: 'image', mimeType: 'image/jpeg', caption: 'our broken pipe', error: 'media_too_large' }],
        [`msg#${DOC}#wamid.big-liar`, undefined, { kind: 'image', mimeType: 'image/jpeg', error: 'media_too_large' }],
        [`msg#${DOC}#wamid.no-hash`, undefined, { kind: 'document', mimeType: 'application/pdf', error: 'media_sha256_missing' }],
      ]);
    });

    it('a file a redrive can fix (the line’s Graph token rejected) stays parked, with nothing sent to Bird', async () => {
      rig = await startWorkerRig(remote, { lines: [{ ...lineFor('doc', remote.bird.flowUrl()), accessToken: 'a-revoked-graph-token' }] });
      remote.graph.addMedia('7010', { body: Buffer.from('jpeg bytes'), mimeType: 'image/jpeg' });
      expect(await post(rig, [mediaMessage('image', 'wamid.token-revoked', '7010', 'image/jpeg')])).toBe(200);
      await rig.waitForHandled(1);
      await settled(rig);
      expect(parkedRows(await rig.dlq.list())).toEqual([['media_token_rejected', `msg#${DOC}#wamid.token-revoked`]]);
      expect(remote.bird.attempts()).toEqual([]);
    });

    it('a generic download type (the stand-in serves application/octet-stream) loses to the declared mime_type: S3 ContentType, key extension and Bird all say image/jpeg', async () => {
      rig = await startWorkerRig(remote);
      // Not registered: the stand-in makes up bytes and serves them, and describes them, as application/octet-stream.
      expect(await post(rig, [mediaMessage('image', 'wamid.generic-type', 'any-8001', 'image/jpeg')])).toBe(200);
      await waitFor(async () => remote.bird.received().length > 0, 10_000, 'the image at Bird');
      const media = flowBody(remote.bird.received()[0]!).message?.media as { s3Key: string; mimeType: string };
      expect(media.mimeType).toBe('image/jpeg');
      expect(media.s3Key).toBe(`media/line-doc/${contactDigest(SENDER)}/${today()}/${wamidDigest('wamid.generic-type')}/any-8001.jpg`);
      const head = await rig.aws.clients.s3.send(new HeadObjectCommand({ Bucket: rig.aws.names.bucket, Key: media.s3Key }));
      expect(head.ContentType).toBe('image/jpeg');
    });

    it('never sends the token to a host that is not allowed, whether Graph names it or a redirect does', async () => {
      rig = await startWorkerRig(remote); // MEDIA_ALLOWED_HOSTS = 127.0.0.1 only
      const bytes = Buffer.from('jpeg bytes');
      remote.graph.addMedia('7005', { body: bytes, mimeType: 'image/jpeg', downloadHost: 'localhost' });
      remote.graph.addMedia('7006', { body: bytes, mimeType: 'image/jpeg', redirectHost: 'localhost' });
      expect(
        await post(rig, [mediaMessage('image', 'wamid.elsewhere', '7005', 'image/jpeg'), mediaMessage('image', 'wamid.redirected', '7006', 'image/jpeg')]),
      ).toBe(200);
      await rig.waitForHandled(1);
      await settled(rig);
      expect(parkedRows(await rig.dlq.list())).toEqual([
        ['media_host_not_allowed', `msg#${DOC}#wamid.elsewhere`],
        ['media_host_not_allowed', `msg#${DOC}#wamid.redirected`],
      ]);
      const requests = remote.graph.requests();
      expect(requests.filter((r) => !r.host.startsWith('127.0.0.1:'))).toEqual([]);
      expect(requests.map((r) => [r.kind, r.mediaId, r.status])).toEqual([
        ['lookup', '7005', 200],
        ['lookup', '7006', 200],
        ['download', '7006', 302],
      ]);
      expect(await rig.objects('media/')).toEqual([]);
    });
  });

  it('an unknown line is parked as unrouted; once the line is registered and the event redriven, it is delivered', async () => {
    const newLine = { lineId: 'line-late', phoneNumberId: '15550009999', wabaId: '777', displayPhoneNumber: '15550009999' };
    const negativeTtlMs = 300;
    rig = await startWorkerRig(remote, { lineCache: { ttlMs: 30_000, negativeTtlMs } });
    const key = `msg#${newLine.phoneNumberId}#wamid.early`;
    expect(await rig.post(webhookPayload([{ changes: [{ phoneNumberId: newLine.phoneNumberId, messages: [textMessage('wamid.early')] }] }]))).toBe(200);
    await rig.waitForHandled(1);
    await settled(rig);
    expect(parkedRows(await rig.dlq.list())).toEqual([['unrouted', key]]);
    expect(remote.bird.attempts()).toEqual([]);

    await rig.ingress.putLines([lineFor(newLine, remote.bird.flowUrl())]);
    // The worker remembers "no such line" for negativeTtlMs (main.ts: at most 5 s): redrive after it.
    await new Promise((r) => setTimeout(r, negativeTtlMs + 50));
    expect((await rig.dlq.redrive({ all: true })).redriven).toHaveLength(1);
    await waitFor(async () => remote.bird.received().length > 0, 10_000, 'the redriven delivery');
    await settled(rig);
    expect(remote.bird.received().map((c) => [c.idempotencyKey, flowBody(c).line.lineId])).toEqual([[key, 'line-late']]);
    expect(await rig.dlq.list()).toEqual([]);
  });

  it('a 2.9 MB payload goes through the claim check and all its events are delivered', async () => {
    rig = await startWorkerRig(remote);
    const wamids = Array.from({ length: 30 }, (_, i) => `wamid.big-${i}`);
    const body = webhookPayload([{ changes: [{ phoneNumberId: DOC, messages: wamids.map((w, i) => textMessage(w, `${i} ${'x'.repeat(96_000)}`)) }] }]);
    expect(Buffer.byteLength(body)).toBeGreaterThan(2_850_000);
    expect(Buffer.byteLength(body)).toBeLessThan(3 * 1024 * 1024);
    expect(await rig.post(body)).toBe(200);
    await waitFor(async () => remote.bird.received().length >= wamids.length, 20_000, 'every event of the big payload');
    await settled(rig);
    expect(await rig.objects('claim-check/')).toHaveLength(1);
    expect(Object.fromEntries(countByKey(remote.bird.received()))).toEqual(Object.fromEntries(wamids.map((w) => [`msg#${DOC}#${w}`, 1])));
    expect(flowBody(remote.bird.received()[29]!).message?.text).toBe(`29 ${'x'.repeat(96_000)}`);
  });

  it("line A's URL: an event whose phone_number_id is line B's is parked as misrouted; A's own events and its account events are delivered", async () => {
    rig = await startWorkerRig(remote);
    const body = webhookPayload([
      { changes: [{ phoneNumberId: DOC, messages: [textMessage('wamid.own')] }] },
      { changes: [{ phoneNumberId: PYWA, messages: [textMessage('wamid.foreign')] }] },
    ]);
    expect(await rig.post(body, 'line-doc')).toBe(200);
    // An account change has no phone_number_id: on a per-line URL the URL says whose it is.
    const account = webhookFixtures().find((f) => f.name === 'account-update-deleted')!;
    expect(await rig.post(account.raw, 'line-doc')).toBe(200);
    await rig.waitForHandled(2);
    await settled(rig);
    expect(parkedRows(await rig.dlq.list())).toEqual([['misrouted', `msg#${PYWA}#wamid.foreign`]]);
    expect(
      remote.bird
        .received()
        .map((c) => [flowBody(c).line.lineId, c.body.kind])
        .sort(),
    ).toEqual([
      ['line-doc', 'account'],
      ['line-doc', 'message'],
    ]);
  });

  it('one permanent failure (Bird 400 for one event) parks only that event; the others complete and the message is deleted', async () => {
    rig = await startWorkerRig(remote);
    const wamids = ['wamid.first', 'wamid.rejected', 'wamid.third'];
    remote.bird.failNext(1, {}); // the first request is answered normally…
    remote.bird.failNext(1, { status: 400 }); // …the second (events go in order) is refused
    expect(await rig.post(webhookPayload([{ changes: [{ phoneNumberId: DOC, messages: wamids.map((w) => textMessage(w)) }] }]))).toBe(200);
    await rig.waitForHandled(1);
    await settled(rig);
    expect(remote.bird.attempts().map((a) => a.status)).toEqual([202, 400, 202]); // a 400 is not retried
    expect(remote.bird.received().map((c) => c.idempotencyKey)).toEqual([`msg#${DOC}#wamid.first`, `msg#${DOC}#wamid.third`]);
    const parked = await rig.dlq.list();
    expect(parked.map((e) => [e.reason, e.eventKey, e.lineId])).toEqual([['bird_rejected_400', `msg#${DOC}#wamid.rejected`, 'line-doc']]);
    expect(await rig.metric('wa_ingress_worker_messages_deleted_total')).toBe(1);
    expect(await rig.metric('wa_ingress_worker_messages_retried_total')).toBe(0);
  });
});

describe('parking once per event, and redriving only the parked event', () => {
  let rig: WorkerRig | undefined;

  beforeEach(() => remote.reset());
  afterEach(async () => {
    await rig?.stop();
    rig = undefined;
  });

  const record = (r: WorkerRig, key: string) =>
    r.aws.clients.documents.send(new GetCommand({ TableName: r.config.dynamodb.dedupeTable, Key: { pk: eventHandle(key) }, ConsistentRead: true })).then((o) => o.Item);

  it('a late redrive (the completed events’ records gone, as after their TTL) delivers only the parked event', async () => {
    rig = await startWorkerRig(remote);
    const [first, rejected, third] = ['wamid.late-1', 'wamid.late-rejected', 'wamid.late-3'].map((w) => `msg#${DOC}#${w}`) as [string, string, string];
    remote.bird.failNext(1, {}); // the first event is accepted…
    remote.bird.failNext(1, { status: 400 }); // …the second refused for good
    const body = webhookPayload([{ changes: [{ phoneNumberId: DOC, messages: ['wamid.late-1', 'wamid.late-rejected', 'wamid.late-3'].map((w) => textMessage(w)) }] }]);
    expect(await rig.post(body)).toBe(200);
    await rig.waitForHandled(1);
    await settled(rig);
    expect(remote.bird.received().map((c) => c.idempotencyKey)).toEqual([first, third]);
    expect(parkedRows(await rig.dlq.list())).toEqual([['bird_rejected_400', rejected]]);
    expect(await record(rig, rejected)).toMatchObject({ status: 'PARKED', parkReason: 'bird_rejected_400' });

    // Day 9 of the DLQ's 14: the COMPLETED records of the other events have expired and TTL removed them.
    for (const key of [first, third]) await rig.aws.clients.documents.send(new DeleteCommand({ TableName: rig.config.dynamodb.dedupeTable, Key: { pk: eventHandle(key) } }));
    expect((await rig.dlq.redrive({ all: true })).redriven).toHaveLength(1);
    await waitFor(async () => remote.bird.received().length >= 3, 10_000, 'the redriven event at Bird');
    await settled(rig);
    expect(remote.bird.received().map((c) => c.idempotencyKey)).toEqual([first, third, rejected]);
    expect(await record(rig, rejected)).toMatchObject({ status: 'COMPLETED' });
    expect(await record(rig, first)).toBeUndefined(); // skipped without a claim: the redrive was not for it
    expect(await rig.dlq.list()).toEqual([]);
    expect(await rig.metric('wa_ingress_worker_events_total', { outcome: 'skipped' })).toBe(2);
  });

  it('a line item that fails validation parks its events at once as line_invalid, without retrying', async () => {
    rig = await startWorkerRig(remote);
    const broken = { ...lineFor({ lineId: 'line-broken', phoneNumberId: '15550003333', wabaId: '333', displayPhoneNumber: '15550003333' }, remote.bird.flowUrl()) };
    await rig.aws.clients.documents.send(
      new PutCommand({ TableName: rig.config.dynamodb.linesTable, Item: { ...broken, bird: { ...broken.bird, flowUrl: 'not a url' } } }),
    );
    expect(await rig.post(webhookPayload([{ changes: [{ phoneNumberId: '15550003333', messages: [textMessage('wamid.broken-line')] }] }]))).toBe(200);
    await rig.waitForHandled(1);
    await settled(rig);
    expect(parkedRows(await rig.dlq.list())).toEqual([['line_invalid', 'msg#15550003333#wamid.broken-line']]);
    expect(await rig.metric('wa_ingress_worker_messages_retried_total')).toBe(0);
    expect(await rig.handled()).toBe(1);
    expect(remote.bird.attempts()).toEqual([]);
  });

  it('two identical value.errors notifications in two POSTs both reach Bird, each under its own key', async () => {
    rig = await startWorkerRig(remote);
    const errors = webhookFixtures().find((f) => f.name === 'value-errors-rate-limit')!;
    expect(await rig.post(errors.raw)).toBe(200);
    await rig.waitForHandled(1);
    expect(await rig.post(errors.raw)).toBe(200); // days later, the same body again
    await rig.waitForHandled(2);
    await settled(rig);
    const keys = remote.bird.received().map((c) => c.idempotencyKey);
    expect(keys).toHaveLength(2);
    expect(new Set(keys).size).toBe(2);
    const content = expectedContentKey('error', { field: 'messages', wabaId: DOC_WABA, phoneNumberId: DOC, raw: valueAt(errors.json, 'entry.0.changes.0.value.errors.0') });
    for (const key of keys) expect(key.startsWith(`${content}#req:`)).toBe(true);
  });

  it('an event is parked once: when the message returns for another event’s retry, the parked ones are neither parked again nor sent to Bird', async () => {
    rig = await startWorkerRig(remote, {
      custom: { bird: { retry: { maxAttempts: 1, initialDelayMs: 10, maxDelayMs: 10 }, breaker: { consecutiveFailures: 100 } }, retryBaseSeconds: 1, retryMaxSeconds: 1 },
    });
    const unknownLine = '15550004242';
    remote.bird.failNext(1, { status: 400 }); // wamid.once-rejected: permanent
    remote.bird.failNext(1, { status: 500 }); // wamid.once-retried: the message comes back
    const body = webhookPayload([
      { changes: [{ phoneNumberId: unknownLine, messages: [textMessage('wamid.once-unrouted')] }] },
      { changes: [{ phoneNumberId: DOC, messages: [textMessage('wamid.once-rejected'), textMessage('wamid.once-retried')] }] },
    ]);
    expect(await rig.post(body)).toBe(200);
    await waitFor(async () => remote.bird.received().length > 0, 15_000, 'the retried event at Bird');
    await settled(rig);
    expect(await rig.handled()).toBe(2);
    expect(parkedRows(await rig.dlq.list())).toEqual([
      ['bird_rejected_400', `msg#${DOC}#wamid.once-rejected`],
      ['unrouted', `msg#${unknownLine}#wamid.once-unrouted`],
    ]);
    expect(remote.bird.attempts().map((a) => a.status)).toEqual([400, 500, 202]);
    expect(remote.bird.received().map((c) => c.idempotencyKey)).toEqual([`msg#${DOC}#wamid.once-retried`]);
    expect(await rig.metric('wa_ingress_worker_parked_total')).toBe(2);
    expect(await rig.metric('wa_ingress_dedupe_claims_total', { outcome: 'parked' })).toBe(2);
  });
});
