import type { ServerResponse } from 'node:http';

/**
 * The Graph reads the Meta watcher makes (src/watch), with drift a test can program:
 * - `GET /{version}/{waba_id}/subscribed_apps` → `{data: [{whatsapp_business_api_data: {id, link, name}}]}`;
 * - `GET /{version}/{phone_number_id}?fields=webhook_configuration,…` → the number's status, quality
 *   and `webhook_configuration {phone_number?, whatsapp_business_account?, application}`.
 * Shapes as in Meta's "WhatsApp Business Account Subscribed Apps" reference and "Webhook overrides" page.
 */
export interface WatchDrift {
  /** The app is listed in subscribed_apps. */
  subscribed: boolean;
  /** The app's callback URL (the App Dashboard's). */
  appCallbackUrl?: string;
  /** A WABA override (`whatsapp_business_account`). */
  wabaOverrideUrl?: string;
  /** A phone number override (`phone_number`). */
  phoneOverrideUrl?: string;
  status: string;
  qualityRating: string;
  /** Answer every watch read with this Graph error code (190: expired token) and HTTP 401/403/400. */
  errorCode?: number;
  /** Answer every watch read with HTTP 500 (Graph unreachable for the watcher). */
  serverError?: boolean;
}

export interface WatchStandInOptions {
  /** The app listed in subscribed_apps while subscribed. */
  appId?: string;
  appCallbackUrl?: string;
}

export class WatchStandIn {
  private drift: WatchDrift;
  private served = 0;

  constructor(private readonly options: WatchStandInOptions = {}) {
    this.drift = this.initial();
  }

  /** Changes what the next reads answer; fields left out keep their value. */
  setDrift(change: Partial<WatchDrift>): void {
    this.drift = { ...this.drift, ...change };
  }

  reset(): void {
    this.drift = this.initial();
    this.served = 0;
  }

  /** Watch reads answered so far (both endpoints). */
  calls(): number {
    return this.served;
  }

  /** Whether a GET is one of the watcher's reads. */
  static matches(pathname: string, fields: string | null): { kind: 'subscribed_apps' | 'phone_number'; id: string } | undefined {
    const apps = /^\/v\d+\.\d+\/([^/]+)\/subscribed_apps$/.exec(pathname);
    if (apps) return { kind: 'subscribed_apps', id: decodeURIComponent(apps[1] ?? '') };
    const number = /^\/v\d+\.\d+\/([0-9]+)$/.exec(pathname);
    if (number && fields?.split(',').includes('webhook_configuration')) return { kind: 'phone_number', id: number[1] ?? '' };
    return undefined;
  }

  handle(res: ServerResponse, read: { kind: 'subscribed_apps' | 'phone_number'; id: string }, fields: string | null): void {
    this.served++;
    const drift = this.drift;
    const json = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (drift.serverError) return json(500, { error: { message: 'An unexpected error has occurred. Please retry your request later.', type: 'OAuthException', code: 2, is_transient: true } });
    if (drift.errorCode !== undefined) {
      const status = drift.errorCode === 190 ? 401 : drift.errorCode === 10 || drift.errorCode === 200 ? 403 : 400;
      return json(status, { error: { message: `(#${drift.errorCode}) Error validating access token: the session has expired`, type: 'OAuthException', code: drift.errorCode, fbtrace_id: 'standin' } });
    }
    if (read.kind === 'subscribed_apps') {
      const appId = this.options.appId ?? '100000000000001';
      const data = drift.subscribed ? [{ whatsapp_business_api_data: { id: appId, link: 'https://www.example.com/', name: 'wa-ingress stand-in app' } }] : [];
      return json(200, { data });
    }
    const all: Record<string, unknown> = {
      id: read.id,
      status: drift.status,
      quality_rating: drift.qualityRating,
      name_status: 'APPROVED',
      throughput: { level: 'STANDARD' },
      webhook_configuration: {
        ...(drift.phoneOverrideUrl ? { phone_number: drift.phoneOverrideUrl } : {}),
        ...(drift.wabaOverrideUrl ? { whatsapp_business_account: drift.wabaOverrideUrl } : {}),
        ...(drift.appCallbackUrl ? { application: drift.appCallbackUrl } : {}),
      },
    };
    const wanted = new Set(['id', ...(fields ?? '').split(',')]);
    json(200, Object.fromEntries(Object.entries(all).filter(([k]) => wanted.has(k))));
  }

  private initial(): WatchDrift {
    return { subscribed: true, appCallbackUrl: this.options.appCallbackUrl, status: 'CONNECTED', qualityRating: 'GREEN' };
  }
}
