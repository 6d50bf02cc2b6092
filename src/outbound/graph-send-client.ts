import { CONNECT_TIMEOUT_CODE, sharedHttpTransport, type HttpAnswer, type HttpTransport } from '../http/keep-alive-transport';
import { classifySendError, errorTitle, parseGraphError, type SendErrorClass } from '../meta/send-errors';

/**
 * What one Graph send came to:
 * - `accepted`: Meta answered with a wamid.
 * - `refused`: Meta answered with an error that says it did not take the message (by `error.code`).
 * - `ambiguous`: it may have been taken (a timeout, a connection lost after the request was written, a 5xx).
 * - `unsent`: the request never left (connection refused, DNS): safe to send again.
 */
export type SendOutcome =
  | { kind: 'accepted'; wamid: string; messageStatus?: string }
  | { kind: 'refused'; errorClass: Exclude<SendErrorClass, 'ambiguous'>; code?: number; title: string; httpStatus: number; raw?: unknown }
  | { kind: 'ambiguous'; detail: string; code?: number; title?: string; httpStatus?: number }
  | { kind: 'unsent'; detail: string };

export interface GraphSendRequest {
  phoneNumberId: string;
  accessToken: string;
  /** The full Graph body: `messaging_product`, `to`, `biz_opaque_callback_data` included. */
  body: Record<string, unknown>;
}

export interface GraphSendClientOptions {
  graphApiBaseUrl: string;
  graphApiVersion: string;
  /** Per attempt, response included; past it the outcome is ambiguous. */
  timeoutMs: number;
  transport?: HttpTransport;
}

/** Errors raised before a byte of the request left: the message cannot have reached Meta. */
const BEFORE_WRITE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', CONNECT_TIMEOUT_CODE, 'ERR_INVALID_URL']);

function causeCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** One POST to `{graph}/{version}/{phone_number_id}/messages`, classified. Never throws. */
export class GraphSendClient {
  private readonly transport: HttpTransport;

  constructor(private readonly options: GraphSendClientOptions) {
    this.transport = options.transport ?? sharedHttpTransport;
  }

  async send(request: GraphSendRequest): Promise<SendOutcome> {
    const url = `${this.options.graphApiBaseUrl.replace(/\/$/, '')}/${this.options.graphApiVersion}/${encodeURIComponent(request.phoneNumberId)}/messages`;
    let response: HttpAnswer;
    try {
      response = await this.transport.exchange({
        method: 'POST',
        url,
        headers: { authorization: `Bearer ${request.accessToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(request.body),
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (error) {
      const code = causeCode(error);
      if (code !== undefined && BEFORE_WRITE.has(code)) return { kind: 'unsent', detail: code };
      const name = error instanceof Error ? error.name : 'Error';
      return { kind: 'ambiguous', detail: name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : (code ?? name) };
    }
    let json: unknown;
    try {
      json = JSON.parse(response.text);
    } catch {
      json = undefined;
    }
    if (response.ok) {
      const message = (json as { messages?: Array<{ id?: unknown; message_status?: unknown }> } | undefined)?.messages?.[0];
      if (typeof message?.id === 'string' && message.id.length > 0) {
        return { kind: 'accepted', wamid: message.id, ...(typeof message.message_status === 'string' ? { messageStatus: message.message_status } : {}) };
      }
      // 2xx without a wamid: Meta may have taken it; only a status can tell.
      return { kind: 'ambiguous', detail: 'accepted_without_wamid', httpStatus: response.status };
    }
    const error = parseGraphError(json);
    const errorClass = classifySendError(error?.code, response.status);
    const title = errorTitle(error, `HTTP ${response.status}`);
    if (errorClass === 'ambiguous') return { kind: 'ambiguous', detail: `http_${response.status}`, code: error?.code, title, httpStatus: response.status };
    return { kind: 'refused', errorClass, code: error?.code, title, httpStatus: response.status, raw: json };
  }
}
