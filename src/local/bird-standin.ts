import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { appendFile, mkdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { createLogger, type Logger } from '../observability/logger';

/**
 * A local Bird for the embedded default, the tests and the benchmarks. It accepts both transports
 * the gateway speaks, checks them the way Bird (or a Bird Flow) would, writes every accepted event
 * to an inbox file, and can be told to fail so the client's retries and breaker can be watched.
 * Its checks are written independently of src/bird on purpose: a signing bug must not verify
 * itself.
 */

export const BIRD_STANDIN_FLOW_SECRET = 'local-bird-flow-secret';
/** The key the stand-in's flows verify the body signature with (a line's `bird.flowSigningSecret`); it never travels. */
export const BIRD_STANDIN_FLOW_SIGNING_SECRET = 'local-bird-flow-signing-secret';
export const BIRD_STANDIN_ACCESS_KEY = 'local-bird-access-key';
export const BIRD_STANDIN_FLOW_PATH = '/flows/wa-ingress';

export interface BirdStandInOptions {
  port?: number;
  host?: string;
  /** JSON-lines file receiving one line per accepted event; omit to keep them in memory only. */
  inboxFile?: string;
  /** One secret for every flow path, or a secret per path (unknown paths answer 404). */
  flowSecrets?: string | Record<string, string>;
  /**
   * The HMAC key each flow verifies `X-Wa-Ingress-Signature-256` with (one for all, or per path;
   * default BIRD_STANDIN_FLOW_SIGNING_SECRET). A path without one accepts requests without the header.
   */
  flowSigningSecrets?: string | Record<string, string>;
  accessKey?: string;
  /**
   * Echo AI: a flow answers each message event with `{replies: [{type: "text", text: {body: "echo: <text>"}}]}`
   * (zero think time), and a conversation message from a contact gets a bot reply in its
   * conversation, announced by a signed webhook to the subscription (see `subscribe`).
   */
  echo?: boolean;
  logger?: Logger;
}

/** What a flow answers: the JSON body of its 2xx, replacing the default acknowledgement. */
export type FlowResponder = (body: Record<string, unknown>, call: { duplicate: boolean; count: number }) => Record<string, unknown> | undefined;

/** A Bird webhook subscription for the conversations service. */
export interface BirdWebhookSubscription {
  /** The URL Bird calls, and signs. */
  url: string;
  signingKey: string;
  /** Where the request really goes when `url` is a load balancer in front of the gateway (tests). */
  via?: string;
}

export interface EmittedWebhook {
  url: string;
  event: string;
  status: number | 'unreachable';
  body: Record<string, unknown>;
}

export interface BirdFault {
  /** Answer with this status (and a JSON error) instead of handling the request. */
  status?: number;
  /** Retry-After header value, as sent (seconds or an HTTP-date). */
  retryAfter?: string | number;
  /** Wait this long before answering; a client that gives up first leaves the request unhandled. */
  delayMs?: number;
}

export interface ReceivedCall {
  transport: 'flow' | 'conversations';
  idempotencyKey: string;
  body: Record<string, unknown>;
  /** Exactly the bytes that arrived. */
  rawBody: Buffer;
  headers: Record<string, string | string[] | undefined>;
  path: string;
  /** Same Idempotency-Key accepted before: Bird would not act on it twice. */
  duplicate: boolean;
}

export interface StandInAttempt {
  method: string;
  path: string;
  /** The status answered, or 'aborted' when the client went away first. */
  status: number | 'aborted';
}

export interface BirdStandIn {
  url: string;
  /** URL of a flow HTTP trigger served by the stand-in. */
  flowUrl(path?: string): string;
  /** BIRD_API_BASE_URL for the conversations transport. */
  conversationsBaseUrl: string;
  /** Accepted events (flow posts and conversation messages), in arrival order. */
  received(): ReceivedCall[];
  /** Every request that reached the stand-in, failed ones included. */
  attempts(): StandInAttempt[];
  /** Replace the flow's answer (e.g. replies that differ per call); undefined restores the default. */
  respondWith(responder: FlowResponder | undefined): void;
  /** Subscribe a webhook to conversation events (conversation.created / conversation.updated). */
  subscribe(subscription: BirdWebhookSubscription | undefined): void;
  /** Webhooks the stand-in posted, with the answer it got. */
  emitted(): EmittedWebhook[];
  /** Say something in a conversation as a participant (bot, user, flow) and announce it like Bird. */
  postAsParticipant(conversationId: string, text: string, participantType?: string): Promise<Record<string, unknown>>;
  /** The stand-in's conversations, for tests. */
  conversationIds(): string[];
  failNext(count: number, fault: BirdFault): void;
  failAlways(fault: BirdFault): void;
  recover(): void;
  reset(): void;
  stop(): Promise<void>;
}

interface Conversation {
  id: string;
  workspaceId: string;
  channelId: string;
  identifierKey: string;
  identifierValue: string;
  contactParticipantId: string;
}

class Rejection extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const MAX_BODY_BYTES = 5 * 1024 * 1024;

export async function startBirdStandIn(options: BirdStandInOptions = {}): Promise<BirdStandIn> {
  const host = options.host ?? '127.0.0.1';
  const logger = (options.logger ?? createLogger({ level: 'info' })).child({ component: 'bird-standin' });
  const flowSecrets = options.flowSecrets ?? BIRD_STANDIN_FLOW_SECRET;
  const flowSigningSecrets = options.flowSigningSecrets ?? BIRD_STANDIN_FLOW_SIGNING_SECRET;
  const accessKey = options.accessKey ?? BIRD_STANDIN_ACCESS_KEY;
  if (options.inboxFile) await mkdir(dirname(options.inboxFile), { recursive: true });

  const received: ReceivedCall[] = [];
  const attempts: StandInAttempt[] = [];
  const acceptedKeys = new Set<string>();
  const conversations = new Map<string, Conversation>();
  /** Messages said in conversations, by id: served by "Get conversation message". */
  const conversationMessages = new Map<string, Record<string, unknown>>();
  const emitted: EmittedWebhook[] = [];
  let subscription: BirdWebhookSubscription | undefined;
  let responder: FlowResponder | undefined = options.echo ? echoResponder : undefined;
  const flowCalls = new Map<string, number>();
  let pendingEmits: Promise<unknown> = Promise.resolve();
  let queuedFaults: BirdFault[] = [];
  let standingFault: BirdFault | undefined;
  let inboxWrites: Promise<void> = Promise.resolve();

  /** Records an accepted event; the inbox line is written before the stand-in answers, as Bird would persist before acking. */
  async function accept(call: Omit<ReceivedCall, 'duplicate'>, summary: Record<string, unknown>): Promise<boolean> {
    const duplicate = acceptedKeys.has(call.idempotencyKey);
    acceptedKeys.add(call.idempotencyKey);
    received.push({ ...call, duplicate });
    logger.info({ transport: call.transport, duplicate, ...summary }, 'bird stand-in accepted event');
    if (!duplicate && options.inboxFile) {
      const line = JSON.stringify({ at: new Date().toISOString(), transport: call.transport, idempotencyKey: call.idempotencyKey, body: call.body });
      const file = options.inboxFile;
      // Chained so that lines keep arrival order under concurrent requests.
      inboxWrites = inboxWrites.catch(() => undefined).then(() => appendFile(file, `${line}\n`, 'utf8'));
      await inboxWrites;
    }
    return duplicate;
  }

  async function handleFlow(req: IncomingMessage, path: string, raw: Buffer): Promise<[number, unknown]> {
    const secret = typeof flowSecrets === 'string' ? flowSecrets : flowSecrets[path];
    if (secret === undefined) throw new Rejection(404, 'flow_not_found', `No flow at ${path}`);
    if (!sameText(req.headers.authorization, `Bearer ${secret}`)) throw new Rejection(401, 'unauthorized', 'Bearer secret missing or wrong');
    const signature = header(req, 'x-wa-ingress-signature-256');
    const hmac = (key: string) => `sha256=${createHmac('sha256', key).update(raw).digest('hex')}`;
    // A signature under the Bearer secret proves nothing: whoever saw the request holds that key.
    if (signature !== undefined && sameText(signature, hmac(secret))) {
      throw new Rejection(401, 'signature_key_travels', 'X-Wa-Ingress-Signature-256 is keyed with the Bearer secret; sign with a key that never travels');
    }
    const signingSecret = typeof flowSigningSecrets === 'string' ? flowSigningSecrets : flowSigningSecrets[path];
    if (signingSecret !== undefined && !sameText(signature, hmac(signingSecret))) {
      throw new Rejection(401, 'bad_signature', 'X-Wa-Ingress-Signature-256 is missing or does not match the body under the flow signing secret');
    }
    const idempotencyKey = requireIdempotencyKey(req);
    const body = parseJsonObject(raw);
    const line = asObject(body.line);
    const problems = [
      typeof body.reference === 'string' ? undefined : 'reference',
      ['message', 'status', 'error', 'account', 'unknown', 'outbound_failed', 'turn'].includes(body.kind as string) ? undefined : 'kind',
      typeof line?.lineId === 'string' ? undefined : 'line.lineId',
      'contact' in body && body.contact !== undefined ? undefined : 'contact',
      typeof body.receivedAt === 'string' && !Number.isNaN(Date.parse(body.receivedAt)) ? undefined : 'receivedAt',
      'raw' in body ? undefined : 'raw',
      body.kind === 'message' && typeof asObject(body.message)?.type !== 'string' ? 'message.type' : undefined,
      body.kind === 'turn' && !Array.isArray(asObject(body.turn)?.messages) ? 'turn.messages' : undefined,
    ].filter((p): p is string => p !== undefined);
    if (problems.length > 0) throw new Rejection(400, 'invalid_body', `Missing or invalid: ${problems.join(', ')}`);
    if (body.reference !== idempotencyKey) throw new Rejection(400, 'invalid_body', 'reference differs from Idempotency-Key');
    const duplicate = await accept(
      { transport: 'flow', idempotencyKey, body, rawBody: raw, headers: req.headers, path },
      { kind: body.kind, reference: body.reference, lineId: line?.lineId },
    );
    const count = (flowCalls.get(idempotencyKey) ?? 0) + 1;
    flowCalls.set(idempotencyKey, count);
    const answer = responder?.(body, { duplicate, count });
    return [duplicate ? 200 : 202, { status: 'accepted', reference: body.reference, ...answer }];
  }

  async function handleConversations(req: IncomingMessage, url: URL, raw: Buffer): Promise<[number, unknown]> {
    if (!sameText(req.headers.authorization, `AccessKey ${accessKey}`)) throw new Rejection(401, 'unauthorized', 'AccessKey missing or wrong');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const workspaceId = parts[1]!;

    // GET /workspaces/{ws}/participants/{key}/{value}/conversations?channelId=
    if (req.method === 'GET' && parts[2] === 'participants' && parts[5] === 'conversations' && parts.length === 6) {
      const channelId = url.searchParams.get('channelId');
      if (!channelId) throw new Rejection(422, 'invalid_query', 'channelId is required');
      const results = [...conversations.values()]
        .filter((c) => c.workspaceId === workspaceId && c.channelId === channelId && c.identifierKey === parts[3] && c.identifierValue === parts[4])
        .map(conversationJson);
      return [200, { results }];
    }

    // POST /workspaces/{ws}/conversations
    if (req.method === 'POST' && parts[2] === 'conversations' && parts.length === 3) {
      const body = parseJsonObject(raw);
      const participant = Array.isArray(body.participants) ? asObject(body.participants[0]) : undefined;
      if (typeof body.channelId !== 'string' || participant?.type !== 'contact' || typeof participant.identifierKey !== 'string' || typeof participant.identifierValue !== 'string') {
        throw new Rejection(422, 'invalid_body', 'channelId and a contact participant (identifierKey, identifierValue) are required');
      }
      const conversation: Conversation = {
        id: randomUUID(),
        workspaceId,
        channelId: body.channelId,
        identifierKey: participant.identifierKey,
        identifierValue: participant.identifierValue,
        contactParticipantId: randomUUID(),
      };
      conversations.set(conversation.id, conversation);
      return [201, conversationJson(conversation)];
    }

    // POST /workspaces/{ws}/conversations/{id}/messages
    if (req.method === 'POST' && parts[2] === 'conversations' && parts[4] === 'messages' && parts.length === 5) {
      const conversation = conversations.get(parts[3]!);
      if (!conversation || conversation.workspaceId !== workspaceId) throw new Rejection(404, 'not_found', 'No such conversation');
      const idempotencyKey = requireIdempotencyKey(req);
      const body = parseJsonObject(raw);
      const problems = conversationMessageProblems(body);
      if (problems.length > 0) throw new Rejection(422, 'invalid_body', `Missing or invalid: ${problems.join(', ')}`);
      if (body.participantId !== undefined && body.participantId !== conversation.contactParticipantId) {
        throw new Rejection(422, 'invalid_body', 'participantId is not the contact of this conversation');
      }
      const messageBody = asObject(body.body)!;
      const duplicate = await accept(
        { transport: 'conversations', idempotencyKey, body, rawBody: raw, headers: req.headers, path: url.pathname },
        { kind: 'message', type: messageBody.type, reference: body.reference, conversationId: conversation.id },
      );
      const said = say(conversation, 'contact', messageBody, body.reference as string);
      if (!duplicate && options.echo) {
        const text = messageBody.type === 'text' ? (asObject(messageBody.text)?.text as string) : `[${String(messageBody.type)}]`;
        // Like an AI Employee: it answers after the contact's message was accepted, never inside that call.
        setImmediate(() => void postAsParticipant(conversation.id, `echo: ${text}`, 'bot').catch(() => undefined));
      }
      return [duplicate ? 200 : 201, { id: said.id, conversationId: conversation.id, reference: body.reference, status: 'accepted' }];
    }

    // GET /workspaces/{ws}/conversations/{id}/messages/{messageId}
    if (req.method === 'GET' && parts[2] === 'conversations' && parts[4] === 'messages' && parts.length === 6) {
      const message = conversationMessages.get(parts[5]!);
      if (!message || message.conversationId !== parts[3]) throw new Rejection(404, 'not_found', 'No such message');
      return [200, message];
    }
    throw new Rejection(404, 'not_found', `No route for ${req.method} ${url.pathname}`);
  }

  /** Records a message said in a conversation, shaped like Bird's conversation message object. */
  function say(conversation: Conversation, participantType: string, body: Record<string, unknown>, reference?: string): Record<string, unknown> {
    const fromContact = participantType === 'contact';
    const message: Record<string, unknown> = {
      id: randomUUID(),
      conversationId: conversation.id,
      reference,
      sender: fromContact
        ? { id: conversation.contactParticipantId, type: 'contact', contact: { identifierKey: conversation.identifierKey, identifierValue: conversation.identifierValue } }
        : { id: `${participantType}-standin`, type: participantType, displayName: 'Echo AI' },
      recipients: fromContact
        ? []
        : [{ type: 'to', id: conversation.contactParticipantId, identifierKey: conversation.identifierKey, identifierValue: conversation.identifierValue }],
      draft: false,
      status: 'accepted',
      source: 'conversations',
      body,
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
    };
    conversationMessages.set(message.id as string, message);
    return message;
  }

  async function postAsParticipant(conversationId: string, text: string, participantType = 'bot'): Promise<Record<string, unknown>> {
    const conversation = conversations.get(conversationId);
    if (!conversation) throw new Error(`No conversation ${conversationId}`);
    const message = say(conversation, participantType, { type: 'text', text: { text } });
    const { body, ...summary } = message;
    void body;
    // conversation.updated carries the conversation with only a preview of its last message (Bird's "Events" page).
    const lastMessage = { ...summary, type: 'text', preview: { text: text.slice(0, 100) } };
    const payload = { ...conversationJson(conversation), lastMessage };
    const emit = emitWebhook('conversation.updated', payload);
    pendingEmits = pendingEmits.then(() => emit);
    await emit;
    return message;
  }

  async function emitWebhook(event: string, payload: Record<string, unknown>): Promise<void> {
    if (!subscription) return;
    const { url: target, signingKey, via } = subscription;
    const body = { service: 'conversations', event, payload };
    const raw = Buffer.from(JSON.stringify(body), 'utf8');
    const timestamp = String(Math.floor(Date.now() / 1000));
    const record: EmittedWebhook = { url: target, event, status: 'unreachable', body };
    emitted.push(record);
    try {
      const response = await fetch(via ?? target, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'messagebird-signature': signBirdWebhook(signingKey, timestamp, target, raw),
          'messagebird-request-timestamp': timestamp,
        },
        body: raw,
        signal: AbortSignal.timeout(10_000),
      });
      record.status = response.status;
      await response.arrayBuffer();
    } catch (error) {
      logger.warn({ err: error, event }, 'bird stand-in could not deliver a webhook');
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const attempt: StandInAttempt = { method: req.method ?? 'GET', path: url.pathname, status: 'aborted' };
    attempts.push(attempt);
    let clientGone = false;
    res.on('close', () => {
      if (!res.writableFinished) clientGone = true;
    });
    const raw = await readBody(req);
    const fault = queuedFaults.shift() ?? standingFault;
    if (fault?.delayMs) await delayUnlessClosed(fault.delayMs, res);
    if (clientGone || res.destroyed) return; // the client timed out: like a dropped connection, nothing was handled

    let status: number;
    let payload: unknown;
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (fault?.status) {
      status = fault.status;
      payload = { code: 'stand_in_fault', message: `Programmed failure ${fault.status}` };
      if (fault.retryAfter !== undefined) headers['Retry-After'] = String(fault.retryAfter);
    } else {
      try {
        if (raw.length > MAX_BODY_BYTES) throw new Rejection(413, 'too_large', 'Body too large');
        if (url.pathname.startsWith('/workspaces/')) [status, payload] = await handleConversations(req, url, raw);
        else if (req.method === 'POST') [status, payload] = await handleFlow(req, url.pathname, raw);
        else throw new Rejection(405, 'method_not_allowed', 'Flows accept POST only');
      } catch (error) {
        if (!(error instanceof Rejection)) throw error;
        status = error.status;
        payload = { code: error.code, message: error.message };
        logger.warn({ path: url.pathname, status, code: error.code }, 'bird stand-in rejected a request');
      }
    }
    attempt.status = status;
    res.writeHead(status, headers).end(JSON.stringify(payload));
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      logger.error({ err: error }, 'bird stand-in failed');
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ code: 'stand_in_error' }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const url = `http://${host}:${(server.address() as AddressInfo).port}`;
  logger.info({ url }, 'bird stand-in listening');

  return {
    url,
    flowUrl: (path = BIRD_STANDIN_FLOW_PATH) => `${url}${path.startsWith('/') ? path : `/${path}`}`,
    conversationsBaseUrl: url,
    received: () => [...received],
    attempts: () => attempts.map((a) => ({ ...a })),
    respondWith(next) {
      responder = next;
    },
    subscribe(next) {
      subscription = next;
    },
    emitted: () => emitted.map((e) => ({ ...e })),
    postAsParticipant,
    conversationIds: () => [...conversations.keys()],
    failNext(count, fault) {
      queuedFaults.push(...Array.from({ length: count }, () => fault));
    },
    failAlways(fault) {
      standingFault = fault;
    },
    recover() {
      queuedFaults = [];
      standingFault = undefined;
    },
    reset() {
      queuedFaults = [];
      standingFault = undefined;
      received.length = 0;
      attempts.length = 0;
      acceptedKeys.clear();
      conversations.clear();
      conversationMessages.clear();
      emitted.length = 0;
      flowCalls.clear();
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.allSettled([inboxWrites, pendingEmits]);
    },
  };
}

/** The echo AI: every message event with something to echo gets one text reply. */
export const echoResponder: FlowResponder = (body) => {
  if (body.kind !== 'message') return undefined;
  const message = asObject(body.message);
  const text = typeof message?.text === 'string' && message.text !== '' ? message.text : `[${String(message?.type)}]`;
  return { replies: [{ type: 'text', text: { body: `echo: ${text}` } }] };
};

/**
 * Bird's webhook signature, written here independently of src/bird: base64 HMAC-SHA256 of
 * timestamp + "\n" + URL + "\n" + the raw SHA-256 digest of the body.
 */
export function signBirdWebhook(signingKey: string, timestamp: string, url: string, raw: Buffer): string {
  const digest = createHash('sha256').update(raw).digest();
  return createHmac('sha256', signingKey)
    .update(Buffer.concat([Buffer.from(`${timestamp}\n${url}\n`), digest]))
    .digest('base64');
}

/** What Bird's message `body` schema requires, per type (docs.bird.com/api/channels-api/message-types). */
function conversationMessageProblems(body: Record<string, unknown>): string[] {
  const problems: string[] = [];
  if (body.participantType !== 'contact') problems.push('participantType (contact)');
  if (typeof body.reference !== 'string' || body.reference === '') problems.push('reference');
  const message = asObject(body.body);
  const type = message?.type;
  const content = typeof type === 'string' ? asObject(message?.[type]) : undefined;
  if (!content) return [...problems, 'body.type and its content'];
  const hasUrl = (item: unknown) => typeof asObject(item)?.mediaUrl === 'string';
  switch (type) {
    case 'text':
      if (typeof content.text !== 'string' || content.text === '') problems.push('body.text.text');
      break;
    case 'image':
      if (!Array.isArray(content.images) || content.images.length === 0 || !content.images.every(hasUrl)) problems.push('body.image.images[].mediaUrl');
      break;
    case 'file':
      if (
        !Array.isArray(content.files) ||
        content.files.length === 0 ||
        !content.files.every((f) => hasUrl(f) && typeof asObject(f)?.contentType === 'string')
      ) {
        problems.push('body.file.files[].mediaUrl and contentType');
      }
      break;
    case 'location': {
      const coordinates = asObject(content.coordinates);
      if (typeof coordinates?.latitude !== 'number' || typeof coordinates.longitude !== 'number') problems.push('body.location.coordinates');
      break;
    }
    default:
      problems.push(`body.type (${String(type)} is not text, image, file or location)`);
  }
  return problems;
}

function conversationJson(c: Conversation) {
  return {
    id: c.id,
    status: 'active',
    channelId: c.channelId,
    featuredParticipants: [
      { id: c.contactParticipantId, type: 'contact', status: 'active', contact: { identifierKey: c.identifierKey, identifierValue: c.identifierValue } },
    ],
  };
}

function requireIdempotencyKey(req: IncomingMessage): string {
  const key = header(req, 'idempotency-key');
  if (!key) throw new Rejection(400, 'missing_idempotency_key', 'Idempotency-Key header is required');
  return key;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function sameText(actual: string | undefined, expected: string): boolean {
  if (actual === undefined) return false;
  const a = Buffer.from(actual);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function parseJsonObject(raw: Buffer): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(raw.toString('utf8'));
    const object = asObject(parsed);
    if (object) return object;
  } catch {
    // answered below
  }
  throw new Rejection(400, 'invalid_json', 'Body must be a JSON object');
}

function asObject(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A programmed delay that ends early when the client hangs up, so no timer outlives the request. */
function delayUnlessClosed(ms: number, res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      res.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    res.once('close', done);
  });
}
