import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { envelopeToEvents } from '../../src/meta/envelope';
import { callbackIsOurs, deriveProblems, effectiveCallback, hostOf, problemChanges, problemsFromAccountEvent, type GraphAnswer } from '../../src/watch/problems';

const BASE = 'https://wa.example.com';
const APP = '100000000000001';
const subscribed = (ids: string[]): GraphAnswer => ({ kind: 'ok', body: { data: ids.map((id) => ({ whatsapp_business_api_data: { id, name: 'x', link: 'https://x' } })) } });
const phone = (body: Record<string, unknown>): GraphAnswer => ({ kind: 'ok', body: { id: '1', status: 'CONNECTED', quality_rating: 'GREEN', ...body } });
const ours = { application: `${BASE}/webhooks/whatsapp` };

describe('effectiveCallback: the number\'s override, else the WABA\'s, else the app\'s', () => {
  it.each([
    [{ phone_number: 'https://a/x', whatsapp_business_account: 'https://b/x', application: 'https://c/x' }, 'https://a/x'],
    [{ whatsapp_business_account: 'https://b/x', application: 'https://c/x' }, 'https://b/x'],
    [{ application: 'https://c/x' }, 'https://c/x'],
    [{ phone_number: '', application: 'https://c/x' }, 'https://c/x'],
    [{}, undefined],
    [undefined, undefined],
  ])('%j → %s', (config, expected) => expect(effectiveCallback(config)).toBe(expected));
});

describe('callbackIsOurs', () => {
  it.each([
    [`${BASE}/webhooks/whatsapp`, true],
    [`${BASE}/webhooks/whatsapp/`, true],
    [`${BASE}/webhooks/whatsapp/line-a`, true],
    ['https://WA.example.com/webhooks/whatsapp', true],
    [`${BASE}/webhooks/whatsapp/line-b`, false],
    ['https://old.example.com/webhooks/whatsapp', false],
    [`${BASE}/other`, false],
    ['not a url', false],
  ])('%s → %s', (url, expected) => expect(callbackIsOurs(url, BASE, 'line-a')).toBe(expected));

  it('gives only the host in details', () => {
    expect(hostOf('https://old.example.com:8443/hook?token=secret')).toBe('old.example.com:8443');
    expect(hostOf(undefined)).toBe('(none)');
  });
});

describe('deriveProblems', () => {
  const facts = { lineId: 'line-a', appId: APP, publicBaseUrl: BASE };

  it('finds nothing on a healthy line, and says it checked everything', () => {
    const verdict = deriveProblems({ ...facts, subscribedApps: subscribed([APP]), phoneNumber: phone({ webhook_configuration: ours }) });
    expect(verdict.found).toEqual({});
    expect(verdict.checked.sort()).toEqual(['app_not_subscribed', 'callback_elsewhere', 'graph_unreachable', 'number_not_connected', 'quality_red', 'token_rejected']);
  });

  it('app_not_subscribed when subscribed_apps lacks this app', () => {
    expect(deriveProblems({ ...facts, subscribedApps: subscribed(['999']), phoneNumber: phone({ webhook_configuration: ours }) }).found).toEqual({ app_not_subscribed: `app ${APP} is not in subscribed_apps` });
  });

  it('skips the subscription check without an app id, and the callback check without a public URL', () => {
    const verdict = deriveProblems({ lineId: 'line-a', subscribedApps: subscribed([]), phoneNumber: phone({ webhook_configuration: { application: 'https://elsewhere.example/x' } }) });
    expect(verdict.found).toEqual({});
    expect(verdict.checked).not.toContain('app_not_subscribed');
    expect(verdict.checked).not.toContain('callback_elsewhere');
  });

  it('callback_elsewhere names the host of the effective callback only', () => {
    const verdict = deriveProblems({ ...facts, subscribedApps: subscribed([APP]), phoneNumber: phone({ webhook_configuration: { phone_number: 'https://old.example.com/hook/abc?k=1', ...ours } }) });
    expect(verdict.found).toEqual({ callback_elsewhere: 'old.example.com' });
  });

  it('number_not_connected and quality_red from the number', () => {
    expect(deriveProblems({ ...facts, phoneNumber: phone({ status: 'DISCONNECTED', quality_rating: 'RED', webhook_configuration: ours }) }).found).toEqual({
      number_not_connected: 'status DISCONNECTED',
      quality_red: 'quality_rating RED',
    });
    expect(deriveProblems({ ...facts, phoneNumber: phone({ status: 'FLAGGED', quality_rating: 'YELLOW', webhook_configuration: ours }) }).found).toEqual({});
  });

  it.each([190, 10, 200])('token_rejected on code %i, leaving the unanswered checks as they were', (code) => {
    const verdict = deriveProblems({ ...facts, subscribedApps: { kind: 'error', httpStatus: 401, code, title: 'expired' } });
    expect(Object.keys(verdict.found)).toEqual(['token_rejected']);
    expect(verdict.checked.sort()).toEqual(['graph_unreachable', 'token_rejected']);
  });

  it('graph_unreachable on a network failure or a 5xx, not on a token error', () => {
    expect(deriveProblems({ ...facts, subscribedApps: { kind: 'unreachable', detail: 'ECONNREFUSED' } }).found).toEqual({ graph_unreachable: 'ECONNREFUSED' });
    expect(deriveProblems({ ...facts, phoneNumber: { kind: 'error', httpStatus: 503, code: 2, title: 'down' } }).found).toEqual({ graph_unreachable: 'HTTP 503' });
  });
});

describe('account webhooks change the same problems at once', () => {
  const fixture = (name: string) => JSON.parse(readFileSync(join(__dirname, '../fixtures/meta-webhooks', name), 'utf8')) as unknown;
  const accountVerdict = (name: string) => {
    const [event] = envelopeToEvents(fixture(name));
    return problemsFromAccountEvent(event!.field, event!.raw);
  };

  it('ACCOUNT_DELETED → number_not_connected', () => {
    expect(accountVerdict('account-update-deleted.json')).toEqual({ checked: ['number_not_connected'], found: { number_not_connected: 'account_update ACCOUNT_DELETED' } });
  });

  it('a policy violation alone changes nothing', () => {
    expect(accountVerdict('account-update-violation.json')).toBeUndefined();
  });

  it('phone_number_quality_update FLAGGED → quality_red; UNFLAGGED clears it', () => {
    expect(accountVerdict('phone-number-quality-update-flagged.json')).toEqual({ checked: ['quality_red'], found: { quality_red: 'phone_number_quality_update FLAGGED' } });
    expect(problemsFromAccountEvent('phone_number_quality_update', { event: 'UNFLAGGED' })).toEqual({ checked: ['quality_red'], found: {} });
  });

  it('DISABLED_UPDATE REINSTATE clears number_not_connected', () => {
    expect(problemsFromAccountEvent('account_update', { event: 'DISABLED_UPDATE', ban_info: { waba_ban_state: 'REINSTATE' } })).toEqual({ checked: ['number_not_connected'], found: {} });
  });
});

describe('problemChanges: what is logged', () => {
  const before = [{ problem: 'quality_red' as const, since: '2026-01-01T00:00:00.000Z', detail: 'quality_rating RED' }, { problem: 'callback_elsewhere' as const, since: '2026-01-01T00:00:00.000Z', detail: 'a.example' }];
  it('raised, changed (new detail) and cleared; unchanged and unchecked ones are quiet', () => {
    const changes = problemChanges(before, { checked: ['quality_red', 'callback_elsewhere', 'token_rejected'], found: { callback_elsewhere: 'b.example', token_rejected: 'Graph error 190' } });
    expect(changes.raised.map((p) => p.problem)).toEqual(['token_rejected']);
    expect(changes.changed).toEqual([{ ...before[1], detail: 'b.example' }]);
    expect(changes.cleared).toEqual([before[0]]);
    expect(problemChanges(before, { checked: ['app_not_subscribed'], found: {} })).toEqual({ raised: [], changed: [], cleared: [] });
  });
});
