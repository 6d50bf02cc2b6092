/** Files in test/fixtures/meta-webhooks that are not webhook POST bodies (signature vectors, a Graph response, GET samples). */
const NOT_WEBHOOK_PAYLOADS = new Set(['signature-vectors.json', 'media-retrieve-url-response.json', 'verification-requests.json']);

export function isWebhookPayloadFile(fileName: string): boolean {
  return fileName.endsWith('.json') && !NOT_WEBHOOK_PAYLOADS.has(fileName);
}
