import type { MediaKind } from '../meta/event';
import { contactDigest, wamidDigest } from '../privacy/pseudonyms';

const MIB = 1024 * 1024;

/**
 * Meta's published caps per media type. "MB" is read as MiB (1024 × 1024), the looser reading,
 * so we never refuse a file WhatsApp itself accepted; a sticker's "500 KB" is 500 × 1024 bytes.
 */
export const MEDIA_SIZE_CAPS: Readonly<Record<MediaKind, number>> = {
  image: 5 * MIB,
  audio: 16 * MIB,
  video: 16 * MIB,
  document: 100 * MIB,
  sticker: 500 * 1024,
};

/** The types Meta lists for inbound media; anything else is stored as `.bin`. */
const EXTENSIONS: Readonly<Record<string, string>> = {
  'image/jpeg': 'jpg',
  'image/png': 'png',
  'image/webp': 'webp',
  'audio/ogg': 'ogg',
  'audio/opus': 'opus',
  'audio/mpeg': 'mp3',
  'audio/mp4': 'm4a',
  'audio/aac': 'aac',
  'audio/amr': 'amr',
  'video/mp4': 'mp4',
  'video/3gpp': '3gp',
  'application/pdf': 'pdf',
  'text/plain': 'txt',
  'application/msword': 'doc',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
  'application/vnd.ms-excel': 'xls',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'xlsx',
  'application/vnd.ms-powerpoint': 'ppt',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'pptx',
};

/** `audio/ogg; codecs=opus` → `ogg`; unknown or missing → `bin`. */
export function extensionFor(mimeType: string | undefined): string {
  const essence = mimeType?.split(';')[0]?.trim().toLowerCase() ?? '';
  return EXTENSIONS[essence] ?? 'bin';
}

const GENERIC_MIME_TYPES = new Set(['application/octet-stream', 'binary/octet-stream', 'application/unknown']);
export const FALLBACK_MIME_TYPE = 'application/octet-stream';

/**
 * The media's type: the first candidate that says something (Graph's lookup, then the webhook's
 * `mime_type`). A generic one (`application/octet-stream`, or none) never beats a specific one, so
 * a JPEG served as octet-stream is stored, keyed (`.jpg`) and handed to Bird as `image/jpeg`.
 */
export function chooseMimeType(...candidates: Array<string | undefined>): string {
  for (const candidate of candidates) {
    const essence = candidate?.split(';')[0]?.trim().toLowerCase();
    if (essence && !GENERIC_MIME_TYPES.has(essence)) return candidate!.trim();
  }
  return FALLBACK_MIME_TYPE;
}

/** Keeps a caller-supplied id from adding path segments or odd characters to the key. */
function keySegment(value: string, what: string): string {
  const segment = value.replace(/[^A-Za-z0-9._=-]/g, '_');
  if (segment.length === 0 || segment === '.' || segment === '..') {
    throw new TypeError(`media object key: ${what} is empty or not usable as a key segment`);
  }
  return segment;
}

/**
 * `media/<lineId>/<contactDigest>/<yyyy>/<mm>/<dd>/<wamidDigest>/<mediaId>.<ext>`, dated by
 * receivedAt in UTC. Deterministic, so a redelivered event finds the object it already stored; the
 * contact's digest makes all of a person's files on a line one prefix (what erasure deletes), and
 * neither the number nor the wamid (base64 of a structure that starts with the number) is in a key:
 * the key is kept in the journal and read in URLs.
 */
export function mediaObjectKey(input: {
  lineId: string;
  /** The sender (wa_id or BSUID); absent only for media no person sent, which no erasure needs to find. */
  contact: string | undefined;
  wamid: string;
  mediaId: string;
  receivedAt: Date;
  mimeType: string | undefined;
}): string {
  const at = input.receivedAt;
  if (Number.isNaN(at.getTime())) throw new TypeError('media object key: receivedAt is not a valid date');
  const yyyy = String(at.getUTCFullYear()).padStart(4, '0');
  const mm = String(at.getUTCMonth() + 1).padStart(2, '0');
  const dd = String(at.getUTCDate()).padStart(2, '0');
  if (input.wamid.length === 0) throw new TypeError('media object key: wamid is empty');
  return [
    contactMediaPrefix(input.lineId, input.contact).slice(0, -1),
    yyyy,
    mm,
    dd,
    keySegment(wamidDigest(input.wamid), 'wamid'),
    `${keySegment(input.mediaId, 'media id')}.${extensionFor(input.mimeType)}`,
  ].join('/');
}

/** Where every media object of one contact on one line lives: the prefix erasure lists and deletes. */
export function contactMediaPrefix(lineId: string, contact: string | undefined): string {
  return contactMediaPrefixOfDigest(lineId, contact ? contactDigest(contact) : NO_CONTACT_SEGMENT);
}

/** The same prefix from the contact's digest (an erasure keeps only the digest). */
export function contactMediaPrefixOfDigest(lineId: string, digest: string): string {
  return `media/${keySegment(lineId, 'lineId')}/${keySegment(digest, 'contact digest')}/`;
}

/** Media of an event that names no person (none today: only messages carry media, and they have a sender). */
const NO_CONTACT_SEGMENT = '-';

/**
 * Meta sends sha256 as base64 in webhooks and does not show the encoding of the Graph response,
 * so accept both (and base64url); anything that is not 32 bytes is treated as absent.
 */
export function sha256ToHex(value: string | undefined | null): string | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(v)) return v.toLowerCase();
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(v)) {
    const bytes = Buffer.from(v, 'base64');
    if (bytes.length === 32) return bytes.toString('hex');
  }
  return undefined;
}

/** Graph's `file_size` is a string in Meta's example and a number elsewhere. */
export function parseFileSize(value: string | number | undefined | null): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}
