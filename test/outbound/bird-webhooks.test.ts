import { createBirdClient } from '../../src/bird';
import { HttpConversationMessageReader } from '../../src/bird/conversation-message-reader';
import { CachedLineRegistry } from '../../src/lines/registry';
import { ReferenceSecretResolver } from '../../src/lines/secrets';
import { DynamoLineStore } from '../../src/lines/store';
import { BIRD_STANDIN_ACCESS_KEY, signBirdWebhook, startBirdStandIn, type BirdStandIn } from '../../src/local/bird-standin';
import { birdWebhookRouter } from '../../src/outbound/bird-webhook-receiver';
import { RecordingAcceptor } from '../support/recording-acceptor';
import type { OutboundAcceptor } from '../../src/outbound/job';
import { DynamoOutboundStore, QueueOutboundAcceptor } from '../../src/outbound';
import { outboundId } from '../../src/outbound/record';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { createRegistry, type Registry } from '../../src/observability/metrics';
import { startAwsHarness, type AwsHarness } from '../support/aws';
import { waitFor } from '../support/child';
import { startIngressHarness, type IngressHarness } from '../support/ingress';
import { capturedLogger } from '../support/logs';
import { deliveryOf, fixtureEvent } from '../bird/events';

const SIGNING_KEY = 'bird-subscription-signing-key';
const WORKSPACE = 'ws-1';
const CHANNEL = 'ch-1';
const PUBLIC_BASE_URL = 'https://wa.example.com';

let aws: AwsHarness;
let bird: BirdStandIn;
let ingress: IngressHarness;
let acceptor: RecordingAcceptor;
/** The acceptor the router uses: the recording one, or the real one (records + outbound FIFO queue). */
let current: OutboundAcceptor;
let registry: Registry;
let logs: ReturnType<typeof capturedLogger>;

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const values = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return values.filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want)).reduce((s, v) => s + v.value, 0);
}

beforeAll(async () => {
  aws = await startAwsHarness();
  bird = await startBirdStandIn({ echo: true, logger: capturedLogger('warn').logger });
  registry = createRegistry({ defaultMetrics: false });
  logs = capturedLogger('debug');
  acceptor = new RecordingAcceptor();
  current = acceptor;
  const lines = new CachedLineRegistry({ store: new DynamoLineStore({ documents: aws.clients.documents, tableName: aws.names.linesTable }), ttlMs: 0, negativeTtlMs: 0, registry });
  const router = birdWebhookRouter({
    lines,
    secrets: new ReferenceSecretResolver({ production: false, cacheTtlMs: 0, env: {} }),
    acceptor: { accept: (request) => current.accept(request) },
    messages: new HttpConversationMessageReader({ birdApiBaseUrl: bird.conversationsBaseUrl, timeoutMs: 3000 }),
    publicBaseUrl: PUBLIC_BASE_URL,
    registry,
    logger: logs.logger,
  });
  ingress = await startIngressHarness(aws, { routes: [router] });
  await ingress.putLines([
    {
      lineId: 'conv-line',
      phoneNumberId: '106540352242922',
      wabaId: '102290129340398',
      displayPhoneNumber: '15550783881',
      bird: { transport: 'conversations', workspaceId: WORKSPACE, channelId: CHANNEL, accessKey: BIRD_STANDIN_ACCESS_KEY, webhookSigningKey: SIGNING_KEY },
    },
    // The same conversations, read with a key Bird no longer accepts (rotated) and with a reference that does not resolve.
    {
      lineId: 'rotated-line',
      phoneNumberId: '106540352242923',
      wabaId: '102290129340398',
      displayPhoneNumber: '15550783882',
      bird: { transport: 'conversations', workspaceId: WORKSPACE, channelId: CHANNEL, accessKey: 'a-key-bird-rotated-away', webhookSigningKey: SIGNING_KEY },
    },
    {
      lineId: 'unresolved-line',
      phoneNumberId: '106540352242924',
      wabaId: '102290129340398',
      displayPhoneNumber: '15550783883',
      bird: { transport: 'conversations', workspaceId: WORKSPACE, channelId: CHANNEL, accessKey: 'env:WA_LINE_SECRET_NOT_SET_YET', webhookSigningKey: SIGNING_KEY },
    },
    {
      lineId: 'unsigned-line',
      phoneNumberId: '106540352242925',
      wabaId: '102290129340398',
      displayPhoneNumber: '15550783884',
      bird: { transport: 'conversations', workspaceId: WORKSPACE, channelId: CHANNEL, accessKey: BIRD_STANDIN_ACCESS_KEY, webhookSigningKey: 'env:WA_LINE_SECRET_SIGNING_NOT_SET_YET' },
    },
    {
      lineId: 'flow-line',
      phoneNumberId: '1122334455667',
      wabaId: '102290129340398',
      displayPhoneNumber: '15551234567',
      bird: { transport: 'flow', flowUrl: bird.flowUrl(), flowSecret: 'x' },
    },
  ]);
});

afterAll(async () => {
  await ingress?.stop();
  await bird?.stop();
  await aws?.stop();
});

beforeEach(() => {
  acceptor.reset();
  current = acceptor;
});

/** The gateway as Bird reaches it: the stand-in posts to the local URL but signs the public one, as a TLS-terminating balancer would make it. */
function subscribeThroughProxy(): void {
  bird.subscribe({ url: `${ingress.url}/bird/webhooks/conv-line`, signingKey: SIGNING_KEY });
}

/** A contact message reaches the stand-in's conversation through the real Bird client; the echo AI answers. */
async function contactSays(): Promise<string> {
  const client = createBirdClient({ logger: capturedLogger('warn').logger, registry: createRegistry({ defaultMetrics: false }), birdApiBaseUrl: bird.conversationsBaseUrl });
  await client.deliver(deliveryOf(fixtureEvent('message-text'), { transport: 'conversations', workspaceId: WORKSPACE, channelId: CHANNEL, accessKey: BIRD_STANDIN_ACCESS_KEY }));
  return bird.conversationIds()[0]!;
}

async function post(path: string, body: Buffer, headers: Record<string, string>): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${ingress.url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

function conversationUpdated(conversationId: string, messageId: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      service: 'conversations',
      event: 'conversation.updated',
      payload: {
        id: conversationId,
        channelId: CHANNEL,
        featuredParticipants: [{ id: 'p1', type: 'contact', contact: { identifierKey: 'phonenumber', identifierValue: '+16505551234' } }],
        lastMessage: { id: messageId, type: 'text', preview: { text: 'x' }, sender: { id: 'bot-1', type: 'bot' } },
      },
    }),
  );
}

function signed(url: string, body: Buffer, timestamp = Math.floor(Date.now() / 1000)): Record<string, string> {
  return { 'messagebird-signature': signBirdWebhook(SIGNING_KEY, String(timestamp), url, body), 'messagebird-request-timestamp': String(timestamp) };
}

describe('POST /bird/webhooks/:lineId', () => {
  it("the AI's answer in the conversation becomes one outbound job to the contact, keyed by Bird's message id", async () => {
    // Bird calls (and signs) the public URL; the load balancer forwards to the task on loopback.
    const publicUrl = `${PUBLIC_BASE_URL}/bird/webhooks/conv-line`;
    bird.subscribe({ url: publicUrl, signingKey: SIGNING_KEY, via: `${ingress.url}/bird/webhooks/conv-line` });
    await contactSays();
    await waitFor(async () => bird.emitted().some((e) => e.status !== 'unreachable'), 5000, 'the echo webhook');
    const emitted = bird.emitted()[0]!;
    expect([emitted.event, emitted.status]).toEqual(['conversation.updated', 200]);
    const lastMessageId = (emitted.body.payload as { lastMessage: { id: string } }).lastMessage.id;
    expect(acceptor.accepted).toEqual([
      {
        lineId: 'conv-line',
        to: '16505551234',
        idempotencyKey: `bird:${lastMessageId}`,
        body: { type: 'text', text: { body: 'echo: Does it come in another color?' } },
        source: 'bird_webhook',
      },
    ]);

    // Bird retries (or sends conversation.created and .updated for the same message): still one job.
    const body = Buffer.from(JSON.stringify(emitted.body));
    const again = await post('/bird/webhooks/conv-line', body, signed(publicUrl, body));
    expect(again).toEqual({ status: 200, json: { status: 'duplicate', id: 'out-0' } });
    expect(acceptor.accepted).toHaveLength(1);
    bird.subscribe(undefined);
  });

  it('a subscription signed for the loopback URL fails behind PUBLIC_BASE_URL: the signed URL is the public one', async () => {
    subscribeThroughProxy();
    const conversationId = await contactSays();
    await bird.postAsParticipant(conversationId, 'from an agent', 'user');
    expect(bird.emitted().at(-1)!.status).toBe(401);
    expect(acceptor.accepted).toHaveLength(0);
    bird.subscribe(undefined);
  });

  it('refuses a wrong signature, a stale or future timestamp, and a URL rebuilt from X-Forwarded-* headers', async () => {
    const conversationId = await contactSays();
    const said = await bird.postAsParticipant(conversationId, 'agent answer', 'user');
    const body = conversationUpdated(conversationId, said.id as string);
    const publicUrl = `${PUBLIC_BASE_URL}/bird/webhooks/conv-line`;
    const now = Math.floor(Date.now() / 1000);

    const cases: Array<[string, Record<string, string>, number]> = [
      ['wrong key', { 'messagebird-signature': signBirdWebhook('another-key', String(now), publicUrl, body), 'messagebird-request-timestamp': String(now) }, 401],
      ['6 minutes old', signed(publicUrl, body, now - 360), 401],
      ['6 minutes ahead', signed(publicUrl, body, now + 360), 401],
      // A caller controls X-Forwarded-*: a signature over the URL they claim is worthless.
      ['signed for the forwarded host', { ...signed('https://evil.example/bird/webhooks/conv-line', body), 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' }, 401],
      ['signed for the loopback URL', signed(`${ingress.url}/bird/webhooks/conv-line`, body), 401],
      ['no headers', {}, 401],
    ];
    for (const [name, headers, status] of cases) {
      expect([name, (await post('/bird/webhooks/conv-line', body, headers)).status]).toEqual([name, status]);
    }
    expect(acceptor.accepted).toHaveLength(0);
    expect(await metric('wa_ingress_bird_webhook_signature_failures_total', { reason: 'stale' })).toBeGreaterThanOrEqual(2);

    // The public URL signed, and forwarded headers that disagree: PUBLIC_BASE_URL wins.
    const ok = await post('/bird/webhooks/conv-line', body, { ...signed(publicUrl, body), 'x-forwarded-host': 'internal-alb', 'x-forwarded-proto': 'http' });
    expect(ok.status).toBe(200);
    expect(acceptor.accepted.map((r) => [r.idempotencyKey, r.body])).toEqual([[`bird:${said.id as string}`, { type: 'text', text: { body: 'agent answer' } }]]);
    expect(logs.text()).not.toContain(SIGNING_KEY);
  });

  it('answers 503 while the job cannot be made durable, and queues it when Bird retries', async () => {
    const conversationId = await contactSays();
    const said = await bird.postAsParticipant(conversationId, 'retry me', 'bot');
    const body = conversationUpdated(conversationId, said.id as string);
    const url = `${PUBLIC_BASE_URL}/bird/webhooks/conv-line`;
    acceptor.unavailable = true;
    const refused = await fetch(`${ingress.url}/bird/webhooks/conv-line`, { method: 'POST', body, headers: signed(url, body) });
    expect([refused.status, refused.headers.get('retry-after')]).toEqual([503, '5']);
    acceptor.unavailable = false;
    expect((await post('/bird/webhooks/conv-line', body, signed(url, body))).json.status).toBe('queued');
    expect(acceptor.accepted).toHaveLength(1);
  });

  it('acknowledges what it does not send (the contact speaking, other events), and 404s lines it cannot verify', async () => {
    const url = `${PUBLIC_BASE_URL}/bird/webhooks/conv-line`;
    const fromContact = Buffer.from(
      JSON.stringify({ service: 'conversations', event: 'conversation.updated', payload: { id: 'c', channelId: CHANNEL, lastMessage: { id: 'm', sender: { type: 'contact' } } } }),
    );
    expect((await post('/bird/webhooks/conv-line', fromContact, signed(url, fromContact))).json).toEqual({ status: 'ignored', reason: 'from_contact' });
    const deleted = Buffer.from(JSON.stringify({ service: 'conversations', event: 'conversation.deleted', payload: { id: 'c' } }));
    expect((await post('/bird/webhooks/conv-line', deleted, signed(url, deleted))).json).toEqual({ status: 'ignored', reason: 'other_event' });
    expect(await metric('wa_ingress_bird_webhooks_total', { outcome: 'ignored', reason: 'from_contact' })).toBe(1);

    for (const lineId of ['flow-line', 'no-such-line', 'bad%20id']) {
      const res = await post(`/bird/webhooks/${lineId}`, deleted, signed(`${PUBLIC_BASE_URL}/bird/webhooks/${lineId}`, deleted));
      expect([lineId, res.status]).toEqual([lineId, 404]);
    }
    expect(acceptor.accepted).toHaveLength(0);
  });

  it('with the real acceptor: 200 only once the record exists and the job is on the outbound FIFO queue, grouped by line and contact', async () => {
    const store = new DynamoOutboundStore({ documents: aws.clients.documents, tableName: aws.names.outboundTable, retentionDays: 1 });
    current = new QueueOutboundAcceptor({ store, sqs: aws.clients.sqs, queueUrl: aws.standIns.outboundQueueUrl, timeoutMs: 3000, registry, logger: logs.logger });
    const conversationId = await contactSays();
    const said = await bird.postAsParticipant(conversationId, 'the real thing', 'bot');
    const body = conversationUpdated(conversationId, said.id as string);
    const answer = await post('/bird/webhooks/conv-line', body, signed(`${PUBLIC_BASE_URL}/bird/webhooks/conv-line`, body));
    const id = outboundId('conv-line', `bird:${said.id as string}`);
    expect(answer).toEqual({ status: 200, json: { status: 'queued', id } });
    expect(await store.get(id)).toMatchObject({ status: 'queued', source: 'bird_webhook', to: '16505551234', type: 'text' });
    const queued = await aws.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: aws.standIns.outboundQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageSystemAttributeNames: ['All'], AttributeNames: ['All'] }),
    );
    expect(queued.Messages?.map((m) => [m.Attributes?.MessageGroupId, JSON.parse(m.Body!).id])).toEqual([['conv-line:16505551234', id]]);
    // Bird's retry: the same message id, nothing new queued.
    expect((await post('/bird/webhooks/conv-line', body, signed(`${PUBLIC_BASE_URL}/bird/webhooks/conv-line`, body))).json).toEqual({ status: 'duplicate', id });
  });

  describe('a reply Bird has but the gateway cannot read yet: 503 so that Bird keeps retrying', () => {
    async function postUpdate(lineId: string, conversationId: string, messageId: string): Promise<Response> {
      const body = conversationUpdated(conversationId, messageId);
      return fetch(`${ingress.url}/bird/webhooks/${lineId}`, { method: 'POST', body, headers: signed(`${PUBLIC_BASE_URL}/bird/webhooks/${lineId}`, body) });
    }

    async function expectRetried(call: Promise<Response>, reason: string): Promise<void> {
      const countedBefore = await metric('wa_ingress_bird_webhooks_total', { outcome: 'unavailable', reason });
      const response = await call;
      expect([response.status, response.headers.get('retry-after'), ((await response.json()) as { reason: string }).reason]).toEqual([503, '5', reason]);
      expect(await metric('wa_ingress_bird_webhooks_total', { outcome: 'unavailable', reason })).toBe(countedBefore + 1);
      expect(logs.lines.some((line) => line.includes('"event":"bird_webhook_unavailable"') && line.includes(`"reason":"${reason}"`))).toBe(true);
    }

    it('401: the line’s access key was rotated at Bird', async () => {
      const conversationId = await contactSays();
      const said = await bird.postAsParticipant(conversationId, 'answer read with an old key', 'bot');
      await expectRetried(postUpdate('rotated-line', conversationId, said.id as string), 'bird_access_key_rejected');
      expect(acceptor.accepted).toHaveLength(0);
      expect(logs.text()).not.toContain('a-key-bird-rotated-away');
    });

    it('403: Bird forbids the read; once it allows it, Bird’s retry queues the reply', async () => {
      const conversationId = await contactSays();
      const said = await bird.postAsParticipant(conversationId, 'answer behind a 403', 'bot');
      bird.failNext(1, { status: 403 });
      await expectRetried(postUpdate('conv-line', conversationId, said.id as string), 'bird_access_key_rejected');
      expect(acceptor.accepted).toHaveLength(0);
      const retried = await postUpdate('conv-line', conversationId, said.id as string);
      expect([retried.status, ((await retried.json()) as { status: string }).status]).toEqual([200, 'queued']);
      expect(acceptor.accepted.map((r) => r.idempotencyKey)).toEqual([`bird:${said.id as string}`]);
    });

    it('404: the message is not readable yet (read after write)', async () => {
      const conversationId = await contactSays();
      await expectRetried(postUpdate('conv-line', conversationId, 'message-bird-has-not-served-yet'), 'bird_message_not_found');
      expect(acceptor.accepted).toHaveLength(0);
    });

    it('the access-key reference does not resolve (the variable is not set yet)', async () => {
      const conversationId = await contactSays();
      const said = await bird.postAsParticipant(conversationId, 'answer for a line being configured', 'bot');
      await expectRetried(postUpdate('unresolved-line', conversationId, said.id as string), 'bird_access_key_unresolved');
      expect(acceptor.accepted).toHaveLength(0);
    });

    it('the signing-key reference does not resolve: the signature cannot be checked yet, so not acknowledged either', async () => {
      const conversationId = await contactSays();
      const said = await bird.postAsParticipant(conversationId, 'answer for a line whose signing key is missing', 'bot');
      await expectRetried(postUpdate('unsigned-line', conversationId, said.id as string), 'bird_signing_key_unresolved');
      expect(acceptor.accepted).toHaveLength(0);
    });

    it('still: a bad signature is 401, and the contact’s own message is 200 ignored', async () => {
      const conversationId = await contactSays();
      const said = await bird.postAsParticipant(conversationId, 'signed with the wrong key', 'bot');
      const body = conversationUpdated(conversationId, said.id as string);
      const now = String(Math.floor(Date.now() / 1000));
      const forged = await post('/bird/webhooks/rotated-line', body, {
        'messagebird-signature': signBirdWebhook('another-key', now, `${PUBLIC_BASE_URL}/bird/webhooks/rotated-line`, body),
        'messagebird-request-timestamp': now,
      });
      expect([forged.status, forged.json.error]).toEqual([401, 'invalid_signature']);
      const fromContact = Buffer.from(
        JSON.stringify({ service: 'conversations', event: 'conversation.updated', payload: { id: conversationId, channelId: CHANNEL, lastMessage: { id: 'm', sender: { type: 'contact' } } } }),
      );
      const url = `${PUBLIC_BASE_URL}/bird/webhooks/rotated-line`;
      expect(await post('/bird/webhooks/rotated-line', fromContact, signed(url, fromContact))).toEqual({ status: 200, json: { status: 'ignored', reason: 'from_contact' } });
      expect(acceptor.accepted).toHaveLength(0);
    });
  });
});
