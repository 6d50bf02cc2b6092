import { sharedHttpTransport, type HttpAnswer, type HttpTransport } from '../http/keep-alive-transport';
import { PermanentError, RetryableError } from '../errors';
import { objectOrUndefined, type JsonObject } from '../meta/untrusted-json';
import { conversationMessagePath } from './webhook-events';

export interface ConversationMessageLookup {
  workspaceId: string;
  /** The line's Bird access key, already resolved. */
  accessKey: string;
  conversationId: string;
  messageId: string;
}

/** Reads one conversation message ("Get conversation message"); the webhook's lastMessage is only a preview. */
export interface ConversationMessageReader {
  get(lookup: ConversationMessageLookup): Promise<JsonObject>;
}

/** `GET {BIRD_API_BASE_URL}/workspaces/{ws}/conversations/{id}/messages/{messageId}` with `AccessKey`. */
export class HttpConversationMessageReader implements ConversationMessageReader {
  private readonly baseUrl: string;

  private readonly transport: HttpTransport;

  constructor(private readonly options: { birdApiBaseUrl: string; timeoutMs: number; transport?: HttpTransport }) {
    this.baseUrl = options.birdApiBaseUrl.replace(/\/+$/, '');
    this.transport = options.transport ?? sharedHttpTransport;
  }

  async get(lookup: ConversationMessageLookup): Promise<JsonObject> {
    let response: HttpAnswer;
    try {
      response = await this.transport.exchange({
        method: 'GET',
        url: this.baseUrl + conversationMessagePath(lookup.workspaceId, lookup.conversationId, lookup.messageId),
        headers: { Authorization: `AccessKey ${lookup.accessKey}`, Accept: 'application/json' },
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (error) {
      throw new RetryableError('bird_unavailable', `Bird could not be reached to read message ${lookup.messageId}`, { cause: error });
    }
    if (response.status === 408 || response.status === 429 || response.status >= 500) {
      throw new RetryableError('bird_unavailable', `Bird answered ${response.status} reading message ${lookup.messageId}`);
    }
    // A rotated access key and a message Bird cannot serve yet (read-after-write) are fixed by a
    // key update or by waiting: the webhook answers 503 on these so Bird keeps retrying.
    if (response.status === 401 || response.status === 403) {
      throw new RetryableError('bird_access_key_rejected', `Bird refused the line's access key (${response.status}) reading message ${lookup.messageId}`);
    }
    if (response.status === 404) {
      throw new RetryableError('bird_message_not_found', `Bird has no readable message ${lookup.messageId} yet (404)`);
    }
    if (!response.ok) {
      throw new PermanentError(`bird_rejected_${response.status}`, `Bird answered ${response.status} reading message ${lookup.messageId}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(response.text);
    } catch {
      parsed = undefined;
    }
    const message = objectOrUndefined(parsed);
    if (!message) throw new RetryableError('bird_bad_response', `Bird's answer for message ${lookup.messageId} is not a JSON object`);
    return message;
  }
}
