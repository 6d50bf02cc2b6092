export type { MediaStore, StoredMedia, StoreMediaInput } from './media-store';
export { S3MediaStore, type S3MediaStoreOptions } from './s3-media-store';
export { MEDIA_SIZE_CAPS, contactMediaPrefix, contactMediaPrefixOfDigest, extensionFor, mediaObjectKey, sha256ToHex } from './media-object';
