import { PermanentError, isUnfixableMediaReason, type UnfixableMediaReason } from '../errors';
import type { Line } from '../lines/line';
import type { SecretResolver } from '../lines/secrets';
import type { MediaStore, StoredMedia } from '../media';
import type { WhatsAppEvent } from '../meta/event';
import { withMediaUrls } from './turns/turn-message';
import { eventContact } from '../journal/journey';

/** The pipeline's media step: a message's file, copied from Meta to S3 with the line's Graph token. */
export class MediaStep {
  constructor(
    private readonly options: {
      secrets: SecretResolver;
      media: MediaStore;
      /** Global Graph token (WHATSAPP_ACCESS_TOKEN) for lines without their own. */
      defaultAccessToken?: string;
    },
  ) {}

  /** The stored file; or, when no redrive could ever fetch it, why not (the event is delivered without it). */
  async fetch(event: WhatsAppEvent, line: Line, receivedAt: string): Promise<{ stored?: StoredMedia & { url: string } } | { error: UnfixableMediaReason }> {
    const media = event.message?.media;
    if (!media) return {};
    const tokenRef = line.accessToken ?? this.options.defaultAccessToken;
    if (!tokenRef) throw new PermanentError('media_no_token', `Line ${line.lineId} has no accessToken and WHATSAPP_ACCESS_TOKEN is not set`);
    const accessToken = await this.options.secrets.resolve(tokenRef);
    try {
      const stored = await this.options.media.store({ lineId: line.lineId, accessToken, wamid: event.message!.id, contact: eventContact(event), media, receivedAt: new Date(receivedAt) });
      return { stored: { ...stored, url: await this.options.media.presignedUrl(stored.s3Key) } };
    } catch (error) {
      if (error instanceof PermanentError && isUnfixableMediaReason(error.reason)) return { error: error.reason };
      throw error;
    }
  }

  /** A turn's files, signed now: its buffered messages hold S3 keys, never a URL that may have died. */
  async signTurn(event: WhatsAppEvent): Promise<WhatsAppEvent> {
    if (!event.turn) return event;
    const messages = await withMediaUrls(event.turn.messages, (s3Key) => this.options.media.presignedUrl(s3Key));
    return { ...event, turn: { ...event.turn, messages } };
  }
}
