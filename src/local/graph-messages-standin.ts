import { appendFileSync, mkdirSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sign } from '../ingress/signature';
import { checkSendBody, describeIssues } from '../meta/send-body';
import type { Logger } from '../observability/logger';

/**
 * The Graph stand-in's `POST /{version}/{phone_number_id}/messages`: validates as Meta does,
 * answers Meta's shapes, appends each accepted send to an outbox file, and posts signed status
 * webhooks (sent, delivered, read, echoing `biz_opaque_callback_data`) back to the gateway.
 * Faults can be programmed: error codes n times, latency, accept-then-lose-the-response, and a
 * recipient whose every send loses its connection before Meta takes it.
 * Also the read / typing-indicator call (`status: "read"`) → `{success: true}`.
 */

export interface SendFault {
  /** Meta's error.code, e.g. 130429, 131047, 131000. */
  code: number;
  /** HTTP status; Meta's usual one for the code when omitted. */
  httpStatus?: number;
  message?: string;
}

export interface RecordedSend {
  phoneNumberId: string;
  to: string;
  type?: string;
  body: Record<string, unknown>;
  /** `biz_opaque_callback_data` as sent. */
  callbackData?: string;
  /**
   * accepted: answered with a wamid; lost: accepted, then the connection dropped; dropped: the
   * connection dropped and Meta never took it; error: refused with `code`.
   */
  outcome: 'accepted' | 'lost' | 'dropped' | 'error';
  wamid?: string;
  code?: number;
  at: number;
}

export interface RecordedReadCall {
  phoneNumberId: string;
  messageId: string;
  typing: boolean;
  outcome: 'ok' | 'error';
}

export interface MessagesStandInOptions {
  /** Appends one JSON line per accepted send (`.data/whatsapp-outbox.jsonl` in the embedded default). */
  outboxFile?: string;
  /** Where status webhooks go, and the app secret that signs them; settable later with setWebhookTarget. */
  webhookUrl?: string;
  appSecret?: string;
  /** Between a send and each of its statuses (sent, delivered, read). */
  statusDelayMs?: number;
  logger?: Logger;
}

const HTTP_STATUS_OF: Record<number, number> = { 130429: 400, 131056: 400, 80007: 400, 4: 400, 131000: 500, 2: 503, 131016: 503, 190: 401, 10: 403, 200: 403 };

function graphErrorBody(code: number, message: string, subcode?: number) {
  return { error: { message, type: code === 190 ? 'OAuthException' : 'OAuthException', code, ...(subcode ? { error_subcode: subcode } : {}), fbtrace_id: `standin${randomBytes(4).toString('hex')}` } };
}

function newWamid(): string {
  return `wamid.HBgL${randomBytes(24).toString('base64').replace(/[+/=]/g, 'A')}`;
}

export class MessagesStandIn {
  private readonly sendsLog: RecordedSend[] = [];
  private readonly readLog: RecordedReadCall[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private faults: Array<SendFault & { remaining: number }> = [];
  private lose: { remaining: number; statuses: boolean } = { remaining: 0, statuses: true };
  private latencyMs = 0;
  private readonly droppedRecipients = new Set<string>();
  private statusesEnabled = true;
  private failReads = 0;
  private webhook: { url?: string; appSecret?: string };
  private readonly statusPosts: Array<{ status: string; httpStatus: number }> = [];

  constructor(private readonly options: MessagesStandInOptions = {}) {
    this.webhook = { url: options.webhookUrl, appSecret: options.appSecret };
    if (options.outboxFile) mkdirSync(dirname(options.outboxFile), { recursive: true });
  }

  setWebhookTarget(url: string | undefined, appSecret?: string): void {
    this.webhook = { url, appSecret };
  }

  /** The next `times` sends answer Meta's error `code`. */
  failNextSends(times: number, fault: SendFault): void {
    this.faults.push({ ...fault, remaining: times });
  }

  /** The next `times` sends are accepted (recorded, statuses as told) but the connection drops before the answer. */
  loseNextResponses(times: number, options: { statuses: boolean }): void {
    this.lose = { remaining: times, statuses: options.statuses };
  }

  /** Every later send to `to` drops its connection without being accepted: no wamid, no status. */
  dropConnectionsTo(to: string): void {
    this.droppedRecipients.add(to);
  }

  setLatency(ms: number): void {
    this.latencyMs = ms;
  }

  /** Status webhooks on or off for every later send. */
  setStatuses(enabled: boolean): void {
    this.statusesEnabled = enabled;
  }

  failNextReads(times: number): void {
    this.failReads = times;
  }

  sends(): RecordedSend[] {
    return this.sendsLog.map((s) => ({ ...s }));
  }

  readCalls(): RecordedReadCall[] {
    return this.readLog.map((r) => ({ ...r }));
  }

  statusWebhooks(): Array<{ status: string; httpStatus: number }> {
    return this.statusPosts.map((s) => ({ ...s }));
  }

  reset(): void {
    this.sendsLog.length = 0;
    this.readLog.length = 0;
    this.statusPosts.length = 0;
    this.faults = [];
    this.lose = { remaining: 0, statuses: true };
    this.latencyMs = 0;
    this.droppedRecipients.clear();
    this.statusesEnabled = true;
    this.failReads = 0;
  }

  stop(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  /** `/{version}/{phone_number_id}/messages`; the caller has checked the bearer token. */
  handle(req: IncomingMessage, res: ServerResponse, phoneNumberId: string): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answer = () => this.answer(res, phoneNumberId, Buffer.concat(chunks).toString('utf8'));
      if (this.latencyMs > 0) this.later(this.latencyMs, answer);
      else answer();
    });
  }

  private answer(res: ServerResponse, phoneNumberId: string, raw: string): void {
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      body = parsed as Record<string, unknown>;
    } catch {
      return this.error(res, 400, 100, 'Unexpected key "" on param "". The body must be a JSON object');
    }
    if (body.messaging_product !== 'whatsapp') return this.error(res, 400, 100, '(#100) The parameter messaging_product is required.');
    if (body.status === 'read') return this.markRead(res, phoneNumberId, body);

    const to = typeof body.to === 'string' ? body.to : undefined;
    if (!to) return this.error(res, 400, 100, '(#100) The parameter to is required.');
    const callbackData = typeof body.biz_opaque_callback_data === 'string' ? body.biz_opaque_callback_data : undefined;
    if (callbackData !== undefined && callbackData.length > 512) return this.error(res, 400, 100, '(#100) Param biz_opaque_callback_data must be at most 512 characters long.');
    const { to: _to, biz_opaque_callback_data: _cb, ...rest } = body;
    const check = checkSendBody(rest);
    const record: RecordedSend = { phoneNumberId, to, type: typeof body.type === 'string' ? body.type : undefined, body, callbackData, outcome: 'error', at: Date.now() };
    this.sendsLog.push(record);
    if (!check.ok) {
      record.code = 131009;
      return this.error(res, 400, 131009, `(#131009) Parameter value is not valid: ${describeIssues(check.issues)}`);
    }
    if (this.droppedRecipients.has(to)) {
      record.outcome = 'dropped';
      res.socket?.destroy();
      return;
    }
    const fault = this.faults.find((f) => f.remaining > 0);
    if (fault) {
      fault.remaining -= 1;
      record.code = fault.code;
      return this.error(res, fault.httpStatus ?? HTTP_STATUS_OF[fault.code] ?? 400, fault.code, fault.message ?? `(#${fault.code}) fault programmed in the Graph stand-in`);
    }
    const wamid = newWamid();
    record.wamid = wamid;
    if (this.options.outboxFile) {
      appendFileSync(this.options.outboxFile, `${JSON.stringify({ at: new Date().toISOString(), phoneNumberId, wamid, ...body })}\n`);
    }
    let statuses = this.statusesEnabled;
    if (this.lose.remaining > 0) {
      this.lose.remaining -= 1;
      statuses = this.lose.statuses;
      record.outcome = 'lost';
      // Meta took it; the caller never hears: the socket closes with no answer.
      res.socket?.destroy();
    } else {
      record.outcome = 'accepted';
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({ messaging_product: 'whatsapp', contacts: [{ input: to, wa_id: to.replace(/^\+/, '') }], messages: [{ id: wamid }] }),
      );
    }
    if (statuses) this.postStatuses(phoneNumberId, to, wamid, callbackData);
  }

  private markRead(res: ServerResponse, phoneNumberId: string, body: Record<string, unknown>): void {
    const messageId = typeof body.message_id === 'string' ? body.message_id : '';
    const typing = typeof body.typing_indicator === 'object' && body.typing_indicator !== null;
    if (this.failReads > 0) {
      this.failReads -= 1;
      this.readLog.push({ phoneNumberId, messageId, typing, outcome: 'error' });
      return this.error(res, 500, 131000, '(#131000) Something went wrong');
    }
    if (!messageId) return this.error(res, 400, 100, '(#100) The parameter message_id is required.');
    this.readLog.push({ phoneNumberId, messageId, typing, outcome: 'ok' });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ success: true }));
  }

  private error(res: ServerResponse, httpStatus: number, code: number, message: string): void {
    res.writeHead(httpStatus, { 'content-type': 'application/json' }).end(JSON.stringify(graphErrorBody(code, message)));
  }

  private postStatuses(phoneNumberId: string, to: string, wamid: string, callbackData: string | undefined): void {
    const delay = this.options.statusDelayMs ?? 20;
    ['sent', 'delivered', 'read'].forEach((status, i) => this.later(delay * (i + 1), () => void this.postStatus(phoneNumberId, to, wamid, callbackData, status)));
  }

  private async postStatus(phoneNumberId: string, to: string, wamid: string, callbackData: string | undefined, status: string, attempt = 1): Promise<void> {
    const { url, appSecret } = this.webhook;
    if (!url || !appSecret) return;
    const item: Record<string, unknown> = { id: wamid, status, timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: to.replace(/^\+/, '') };
    if (callbackData !== undefined) item.biz_opaque_callback_data = callbackData;
    const payload = JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [{ id: 'standin-waba', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { display_phone_number: phoneNumberId, phone_number_id: phoneNumberId }, statuses: [item] } }] }],
    });
    let httpStatus = 0;
    try {
      const res = await fetch(url, { method: 'POST', body: payload, headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(appSecret, payload) } });
      await res.arrayBuffer();
      httpStatus = res.status;
    } catch {
      httpStatus = 0;
    }
    this.statusPosts.push({ status, httpStatus });
    // Meta retries a webhook that was not answered 200; a few quick retries are enough here.
    if (httpStatus !== 200 && attempt < 5) this.later(200 * attempt, () => void this.postStatus(phoneNumberId, to, wamid, callbackData, status, attempt + 1));
    else if (httpStatus !== 200) this.options.logger?.warn({ status, httpStatus }, 'graph stand-in: status webhook not accepted');
  }

  private later(ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, ms);
    this.timers.add(timer);
  }
}
