/** The console's JSON API, relative to the page (`/console/` → `/console/api/`), with the session cookie and its CSRF token. */
let csrf: string | undefined;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  const res = await fetch(`api/${path}`, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 204) return undefined as T;
  const data = (await res.json().catch(() => ({}))) as { message?: string };
  if (!res.ok) throw new ApiError(res.status, data.message ?? `HTTP ${res.status}`);
  return data as T;
}

export const api = {
  get: <T>(path: string) => call<T>('GET', path),
  post: <T>(path: string, body?: unknown) => call<T>('POST', path, body ?? {}),
  async session(): Promise<boolean> {
    try {
      const s = await call<{ csrf?: string }>('GET', 'session');
      csrf = s.csrf;
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return false;
      throw error;
    }
  },
  async login(token: string): Promise<void> {
    const s = await call<{ csrf: string }>('POST', 'session', { token });
    csrf = s.csrf;
  },
  async logout(): Promise<void> {
    await call('DELETE', 'session');
    csrf = undefined;
  },
};

export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export interface Line {
  lineId: string;
  active: boolean;
  transport: string;
  displayPhoneNumber?: string;
  lastEventAt: string | null;
  lastHour: Record<string, number>;
}

export interface EventRow {
  handle: string;
  lineId: string;
  kind: string;
  type: string;
  outcome: string;
  receivedAt: string;
  updatedAt?: string;
  reason?: string;
  contact?: string;
  wamid?: string;
  duplicates: number;
  retries: number;
}

export interface Step {
  at: string;
  step: string;
  detail?: Record<string, string | number | boolean>;
}

export interface EventDetail extends EventRow {
  status: string;
  attempts?: number;
  journey: Step[];
  event?: unknown;
  media?: { type?: string; size?: number; href: string };
}

export interface DlqRow {
  id: string;
  reason: string;
  handle: string | null;
  lineId: string | null;
  receivedAt: string | null;
  parkedAt: string | null;
  receiveCount: number;
  bodyBytes: number;
}

export interface Page<T> {
  items: T[];
  cursor?: string;
}
