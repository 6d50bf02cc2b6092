import { errorTitle, parseGraphError } from '../meta/send-errors';
import type { GraphAnswer } from './problems';

/** The fields the watcher reads from a phone number (Meta: WhatsApp Business Phone Number, and Webhook overrides). */
export const PHONE_NUMBER_WATCH_FIELDS = 'webhook_configuration,status,quality_rating,name_status,throughput';

export interface GraphWatchClient {
  subscribedApps(wabaId: string, token: string): Promise<GraphAnswer>;
  phoneNumber(phoneNumberId: string, token: string): Promise<GraphAnswer>;
}

/**
 * The watcher's two Graph reads, each classified and never thrown. Node's fetch keeps its
 * connections to a host alive between calls (undici's pool), so a round over many lines reuses them.
 */
export class HttpGraphWatchClient implements GraphWatchClient {
  constructor(private readonly options: { graphApiBaseUrl: string; graphApiVersion: string; timeoutMs: number }) {}

  subscribedApps(wabaId: string, token: string): Promise<GraphAnswer> {
    return this.get(`${encodeURIComponent(wabaId)}/subscribed_apps`, token);
  }

  phoneNumber(phoneNumberId: string, token: string): Promise<GraphAnswer> {
    return this.get(`${encodeURIComponent(phoneNumberId)}?fields=${PHONE_NUMBER_WATCH_FIELDS}`, token);
  }

  private async get(path: string, token: string): Promise<GraphAnswer> {
    const url = `${this.options.graphApiBaseUrl.replace(/\/$/, '')}/${this.options.graphApiVersion}/${path}`;
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(this.options.timeoutMs) });
      text = await response.text();
    } catch (error) {
      const name = error instanceof Error ? error.name : 'Error';
      const code = (error as { cause?: { code?: unknown } }).cause?.code;
      return { kind: 'unreachable', detail: name === 'TimeoutError' ? 'timeout' : typeof code === 'string' ? code : name };
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (response.ok) return { kind: 'ok', body };
    const error = parseGraphError(body);
    return { kind: 'error', httpStatus: response.status, code: error?.code, title: errorTitle(error, `HTTP ${response.status}`) };
  }
}
