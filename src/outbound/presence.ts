import { Counter, type Registry } from 'prom-client';
import { sharedHttpTransport, type HttpTransport } from '../http/keep-alive-transport';
import type { Line } from '../lines/line';
import type { SecretResolver } from '../lines/secrets';
import type { WhatsAppEvent } from '../meta/event';
import type { Logger } from '../observability/logger';

/**
 * What the contact sees once their message reached the AI: blue ticks and "typing…". Graph shows
 * the typing indicator only together with a read receipt (`POST /{phone_number_id}/messages`
 * with `status: "read"`), until the reply or for 25 s.
 */
export interface PresenceSignal {
  /** Best effort and never throws: the delivery to Bird already succeeded and must stay so. */
  messageHandedToBird(line: Line, event: WhatsAppEvent): void;
}

export interface GraphPresenceOptions {
  graphApiBaseUrl: string;
  graphApiVersion: string;
  secrets: SecretResolver;
  /** WHATSAPP_ACCESS_TOKEN for lines without their own token. */
  defaultAccessToken?: string;
  /** Per call; a slow Graph must not hold sockets for long. */
  timeoutMs?: number;
  /** More calls than this in flight are skipped (counted): presence never queues up behind Graph. */
  maxInFlight?: number;
  registry: Registry;
  logger: Logger;
  transport?: HttpTransport;
}

type Outcome = 'sent' | 'failed' | 'skipped';

export class GraphPresence implements PresenceSignal {
  private readonly calls: Counter<'outcome' | 'reason'>;
  private readonly baseUrl: string;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly logger: Logger;
  private readonly transport: HttpTransport;

  constructor(private readonly options: GraphPresenceOptions) {
    this.baseUrl = `${options.graphApiBaseUrl.replace(/\/+$/, '')}/${options.graphApiVersion}`;
    this.logger = options.logger.child({ component: 'presence' });
    this.transport = options.transport ?? sharedHttpTransport;
    this.calls = new Counter({
      name: 'wa_ingress_presence_calls_total',
      help: 'Read receipts with typing indicator sent to Graph after a message reached Bird, by outcome (sent, failed, skipped) and reason',
      labelNames: ['outcome', 'reason'],
      registers: [options.registry],
    });
  }

  messageHandedToBird(line: Line, event: WhatsAppEvent): void {
    if (event.kind !== 'message' || !event.message?.id || !event.phoneNumberId) return;
    if (!line.presence.markRead) return this.count('skipped', 'disabled');
    // Meta refuses read receipts and typing in groups (Groups API).
    if (event.groupId !== undefined) return this.count('skipped', 'group');
    if (this.inFlight.size >= (this.options.maxInFlight ?? 256)) return this.count('skipped', 'busy');
    const call = this.send(line, event.phoneNumberId, event.message.id).finally(() => this.inFlight.delete(call));
    this.inFlight.add(call);
  }

  /** Waits for the calls in flight (shutdown, tests). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }

  private async send(line: Line, phoneNumberId: string, messageId: string): Promise<void> {
    try {
      const tokenRef = line.accessToken ?? this.options.defaultAccessToken;
      if (!tokenRef) return this.count('skipped', 'no_token');
      const token = await this.options.secrets.resolve(tokenRef);
      const body: Record<string, unknown> = { messaging_product: 'whatsapp', status: 'read', message_id: messageId };
      if (line.presence.typing) body.typing_indicator = { type: 'text' };
      const response = await this.transport.exchange({
        method: 'POST',
        url: `${this.baseUrl}/${encodeURIComponent(phoneNumberId)}/messages`,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 5000),
      });
      if (response.ok) return this.count('sent', '');
      const code = graphErrorCode(response.text);
      this.count('failed', code === undefined ? `http_${response.status}` : `code_${code}`);
      if (code === 190 || code === 10 || code === 200) {
        // The same line token sends the replies: this line's event drives the GraphTokenFailures alarm (infra/).
        this.logger.error({ event: 'graph_token_rejected', source: 'presence', lineId: line.lineId, code }, "Graph refused the line's token on the read receipt; fix the line accessToken");
        return;
      }
      this.logger.warn({ lineId: line.lineId, status: response.status, code }, 'graph refused the read receipt / typing indicator');
    } catch (error) {
      this.count('failed', error instanceof Error && error.name === 'TimeoutError' ? 'timeout' : 'network');
      this.logger.warn({ lineId: line.lineId, err: error }, 'read receipt / typing indicator not sent');
    }
  }

  private count(outcome: Outcome, reason: string): void {
    this.calls.inc({ outcome, reason });
  }
}

/** Meta's numeric `error.code` only; the rest of an error body is not logged. */
function graphErrorCode(text: string): number | undefined {
  try {
    const code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'number' && Number.isInteger(code) ? code : undefined;
  } catch {
    return undefined;
  }
}
