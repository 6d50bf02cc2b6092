import { GetCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ContactStates, DynamoContactStore } from '../../src/conversation';
import { createRegistry } from '../../src/observability/metrics';
import { DynamoOutboundStore } from '../../src/outbound/dynamo-outbound-store';
import { bodyHash, outboundId } from '../../src/outbound/record';
import { eventHandle } from '../../src/privacy/pseudonyms';
import { startConsoleRig, type ConsoleRig } from '../support/console';
import { waitFor } from '../support/child';
import { LINES, SENDER, lineFor, nowTimestamp, startRemoteStandIns, type LineName, type RemoteStandIns, webhookPayload } from '../support/worker';

/**
 * forwardStatuses on the real stand-ins: which of Meta's statuses reach the Bird stand-in per
 * setting, what a status kept from Bird costs in DynamoDB calls, and that the console still shows it.
 * line-doc keeps the default (`failed`), line-pywa forwards `all`, line-third `none`.
 */
let remote: RemoteStandIns;
let c: ConsoleRig;
let store: DynamoOutboundStore;
/** Every DynamoDB command the gateway's clients send: `Operation table[ index]`. */
const calls: string[] = [];

function countCalls(client: DynamoDBClient): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { TableName?: string; IndexName?: string };
      calls.push(`${String(context.commandName).replace(/Command$/, '')} ${input.TableName ?? '-'}${input.IndexName ? ` ${input.IndexName}` : ''}`);
      return next(args);
    },
    { step: 'initialize', name: 'testDynamoCallCounter' },
  );
}

beforeAll(async () => {
  remote = await startRemoteStandIns();
  const url = remote.bird.flowUrl();
  const { forwardStatuses: _all, ...byDefault } = lineFor('doc', url);
  c = await startConsoleRig(remote, { outbound: true, lineCache: { ttlMs: 30_000, negativeTtlMs: 300 }, lines: [byDefault, { ...lineFor('pywa', url), forwardStatuses: 'all' }, { ...lineFor('third', url), forwardStatuses: 'none' }] });
  const { clients, names } = c.rig.aws;
  store = new DynamoOutboundStore({ documents: clients.documents, tableName: names.outboundTable, retentionDays: 14 });
  countCalls(clients.dynamodb);
  countCalls(clients.itemUpdates);
});
afterAll(async () => {
  await c?.stop();
  await remote?.stop();
});
afterEach(() => remote.reset());

type Status = 'sent' | 'delivered' | 'read' | 'failed';

function statusItem(wamid: string, status: Status, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: wamid,
    status,
    timestamp: nowTimestamp(),
    recipient_id: SENDER,
    ...(status === 'failed' ? { errors: [{ code: 131047, title: 'Re-engagement message' }] } : {}),
    ...extra,
  };
}

function statusPayload(line: LineName, statuses: Record<string, unknown>[]): string {
  const { phoneNumberId, displayPhoneNumber, wabaId } = LINES[line];
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: wabaId, changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: displayPhoneNumber, phone_number_id: phoneNumberId }, statuses } }] }],
  });
}

/** Posts the payload and waits until the worker has handled its message. */
async function postHandled(body: string): Promise<void> {
  const before = await c.rig.handled();
  expect(await c.rig.post(body)).toBe(200);
  await c.rig.waitForHandled(before + 1, 10_000);
}

const birdStatuses = () => remote.bird.received().filter((call) => call.body.kind === 'status').map((call) => call.idempotencyKey);
/** The gateway's own calls for an event: background sweeps and the lines cache are not the event's. */
const eventCalls = () => calls.filter((call) => !call.includes('byPending') && !call.includes(c.rig.config.dynamodb.linesTable));

async function reply(key: string): Promise<string> {
  const id = outboundId(LINES.doc.lineId, key);
  const body = { type: 'text', text: { body: 'hi' } };
  await store.create({ id, lineId: LINES.doc.lineId, idempotencyKey: key, to: SENDER, bodyHash: bodyHash(SENDER, body), type: 'text', source: 'api', body });
  return id;
}

describe('forwardStatuses', () => {
  it('per setting: failed (the default) forwards only failed, all forwards every status, none forwards nothing', async () => {
    const sent: Record<LineName, string[]> = { doc: [], pywa: [], third: [] };
    for (const line of ['doc', 'pywa', 'third'] as const) {
      const wamid = `wamid.forwarding-${line}`;
      const statuses = (['sent', 'delivered', 'read', 'failed'] as const).map((s) => statusItem(wamid, s));
      await postHandled(statusPayload(line, statuses));
      sent[line] = ['sent', 'delivered', 'read', 'failed'].map((s) => `status#${wamid}#${s}`);
    }
    const heard = birdStatuses();
    expect(heard.filter((k) => sent.doc.includes(k))).toEqual([sent.doc[3]]);
    expect(heard.filter((k) => sent.pywa.includes(k))).toEqual(sent.pywa);
    expect(heard.filter((k) => sent.third.includes(k))).toEqual([]);
    expect(await c.rig.metric('wa_ingress_worker_events_total', { kind: 'status', outcome: 'not_forwarded' })).toBe(3 + 4);
  });

  it("a status of our reply kept from Bird: exactly one DynamoDB call (the settle write), the reply's journey shows it; a retry counts nothing again", async () => {
    const id = await reply('forwarding-ours-1');
    const wamid = 'wamid.forwarding-ours-1';
    const delivered = statusItem(wamid, 'delivered', { biz_opaque_callback_data: id, pricing: { billable: true, pricing_model: 'PMP', category: 'utility' } });
    calls.length = 0;
    await postHandled(statusPayload('doc', [delivered]));
    expect(eventCalls()).toEqual([`UpdateItem ${c.rig.aws.names.outboundTable}`]);
    expect(birdStatuses()).toEqual([]);
    const record = (await store.get(id))!;
    expect(record).toMatchObject({ status: 'delivered' });
    expect(record.journey.map((s) => s.step)).toEqual(['queued', 'delivered']);
    const billable = () => c.rig.metric('wa_ingress_outbound_billable_total', { lineId: LINES.doc.lineId, category: 'utility' });
    expect(await billable()).toBe(1);
    // Meta retries the same status: the settle write is refused (its rank), nothing changes, nothing counted.
    await postHandled(statusPayload('doc', [delivered]));
    expect(await billable()).toBe(1);
    expect((await store.get(id))!.journey.map((s) => s.step)).toEqual(['queued', 'delivered']);
    expect(birdStatuses()).toEqual([]);
    // No dedupe record for it: the reply's record is its journal.
    const dedupe = await c.rig.aws.clients.documents.send(new GetCommand({ TableName: c.rig.config.dynamodb.dedupeTable, Key: { pk: eventHandle(`status#${wamid}#delivered`) } }));
    expect(dedupe.Item).toBeUndefined();
  });

  it('a status of a message sent elsewhere kept from Bird: journaled once (not_forwarded) and listed by the console; a retry adds nothing', async () => {
    const wamid = 'wamid.forwarding-foreign-1';
    const key = `status#${wamid}#read`;
    await postHandled(statusPayload('doc', [statusItem(wamid, 'read')]));
    await postHandled(statusPayload('doc', [statusItem(wamid, 'read')]));
    expect(birdStatuses()).toEqual([]);
    let items: { handle: string; outcome: string; kind: string }[] = [];
    await waitFor(async () => {
      items = ((await (await c.api(`events?lineId=${LINES.doc.lineId}&kind=status&limit=100`)).json()) as { items: typeof items }).items;
      return items.some((i) => i.handle === eventHandle(key));
    }, 5000, 'the foreign status listed');
    expect(items.find((i) => i.handle === eventHandle(key))).toMatchObject({ outcome: 'not_forwarded', kind: 'status' });
    const detail = (await (await c.api(`events/${encodeURIComponent(eventHandle(key))}`)).json()) as { journey: { step: string }[] };
    expect(detail.journey.map((s) => s.step)).toEqual(['received', 'not_forwarded']);
  });

  it('none: a 131047 failed status still closes the contact window, and Bird hears nothing', async () => {
    const wamid = 'wamid.forwarding-window-1';
    // The contact wrote first: their window is open.
    const message = { from: SENDER, id: 'wamid.forwarding-window-in', timestamp: nowTimestamp(), type: 'text', text: { body: 'hi' } };
    await postHandled(webhookPayload([{ changes: [{ phoneNumberId: LINES.third.phoneNumberId, messages: [message] }] }]));
    remote.reset();
    await postHandled(statusPayload('third', [statusItem(wamid, 'failed')]));
    expect(birdStatuses()).toEqual([]);
    const contacts = new ContactStates({ store: new DynamoContactStore({ documents: c.rig.aws.clients.documents, tableName: c.rig.config.dynamodb.contactsTable }), registry: createRegistry({ defaultMetrics: false }), cacheMs: 0 });
    expect(await contacts.get(LINES.third.lineId, SENDER)).toMatchObject({ windowClosedAt: expect.any(Number) });
  });

  it('a parked status redriven: the line (default `failed`) gets the failed one; the read one completes without Bird, marked not_forwarded', async () => {
    const late = { lineId: 'line-late-status', phoneNumberId: '15550008888', wabaId: '888', displayPhoneNumber: '15550008888' };
    const wamid = 'wamid.forwarding-redrive-1';
    const body = JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [{ id: late.wabaId, changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: late.displayPhoneNumber, phone_number_id: late.phoneNumberId }, statuses: [statusItem(wamid, 'read'), statusItem(wamid, 'failed')] } }] }],
    });
    await postHandled(body);
    await waitFor(async () => (await c.rig.dlq.list()).length === 2, 10_000, 'both statuses parked as unrouted');
    expect(birdStatuses()).toEqual([]);
    const { forwardStatuses: _all, ...byDefault } = lineFor(late, remote.bird.flowUrl());
    await c.rig.ingress.putLines([byDefault]);
    await new Promise((r) => setTimeout(r, 350));
    expect((await c.rig.dlq.redrive({ all: true })).redriven).toHaveLength(2);
    const readKey = `status#${wamid}#read`;
    await waitFor(async () => {
      const res = await c.api(`events/${encodeURIComponent(eventHandle(readKey))}`);
      return res.status === 200 && ((await res.json()) as { outcome: string }).outcome === 'not_forwarded';
    }, 10_000, 'the redriven read status done without Bird');
    await waitFor(async () => birdStatuses().length > 0, 10_000, 'the redriven failed status at Bird');
    await waitFor(async () => (await c.rig.dlq.list()).length === 0, 10_000, 'the DLQ empty');
    expect(birdStatuses()).toEqual([`status#${wamid}#failed`]);
  });
});
