import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isWebhookPayloadFile } from '../../src/local/fixture-files';

/** The project's own copy of the Meta corpus (SOURCES.md beside it); FIXTURES_DIR overrides it. */
export const FIXTURES_DIR = process.env.FIXTURES_DIR ?? resolve(__dirname, '../fixtures/meta-webhooks');


export interface Fixture {
  name: string;
  /** The file's bytes, as a POST body would carry them. */
  raw: Buffer;
  json: unknown;
}

export function loadFixture(name: string): Fixture {
  const file = name.endsWith('.json') ? name : `${name}.json`;
  const raw = readFileSync(join(FIXTURES_DIR, file));
  return { name: file.replace(/\.json$/, ''), raw, json: JSON.parse(raw.toString('utf8')) };
}

/** Every webhook payload fixture (POST bodies), sorted by name. */
export function webhookFixtures(): Fixture[] {
  return readdirSync(FIXTURES_DIR)
    .filter(isWebhookPayloadFile)
    .sort()
    .map(loadFixture);
}
