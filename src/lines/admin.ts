import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors';
import { lineSchema, type BirdTarget, type Line } from './line';
import { maskSecretRef, secretRefKind, type SecretResolver } from './secrets';
import type { LineStore } from './store';

/** Every secret-bearing field of a line, as [path, value]. */
function secretFields(line: Line): Array<[string, string]> {
  const fields: Array<[string, string | undefined]> = [
    ...line.appSecrets.map((s, i): [string, string] => [`appSecrets[${i}]`, s]),
    ...(line.outboundKeys ?? []).map((s, i): [string, string] => [`outboundKeys[${i}]`, s]),
    ['verifyToken', line.verifyToken],
    ['accessToken', line.accessToken],
    ...(line.bird.transport === 'flow'
      ? ([
          ['bird.flowSecret', line.bird.flowSecret],
          ['bird.flowSigningSecret', line.bird.flowSigningSecret],
        ] as Array<[string, string | undefined]>)
      : ([
          ['bird.accessKey', line.bird.accessKey],
          ['bird.webhookSigningKey', line.bird.webhookSigningKey],
        ] as Array<[string, string | undefined]>)),
  ];
  return fields.filter((f): f is [string, string] => f[1] !== undefined);
}

/** Parse lines from JSON (one object or an array); in production, literal secrets are refused. */
export function parseLines(json: unknown, options: { production: boolean }): Line[] {
  const parsed = (Array.isArray(json) ? z.array(lineSchema) : lineSchema).safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`Invalid line definition:\n  ${problems.join('\n  ')}`);
  }
  const lines = Array.isArray(parsed.data) ? parsed.data : [parsed.data];
  if (options.production) {
    for (const line of lines) {
      const literals = secretFields(line).filter(([, v]) => secretRefKind(v) === 'literal');
      if (literals.length > 0) {
        throw new ConfigError(
          `Line ${line.lineId}: literal secrets are refused when NODE_ENV=production (${literals.map(([p]) => p).join(', ')}); use env:WA_LINE_SECRET_NAME or secretsmanager:ARN`,
        );
      }
    }
  }
  for (const line of lines) {
    // The conversations transport posts each message into Bird's conversation: there is no turn to send.
    if (line.turn && line.bird.transport !== 'flow') throw new ConfigError(`Line ${line.lineId}: turn applies to flow lines only (bird.transport is ${line.bird.transport})`);
  }
  const ids = new Set<string>();
  for (const line of lines) {
    if (ids.has(line.lineId)) throw new ConfigError(`Line ${line.lineId} is defined twice`);
    ids.add(line.lineId);
  }
  return lines;
}

export function readLinesFile(path: string, options: { production: boolean }): Line[] {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(`LINES_FILE ${path}: ${(error as Error).message}`);
  }
  return parseLines(json, options);
}

export async function upsertLines(store: LineStore, lines: Line[]): Promise<void> {
  for (const line of lines) await store.put(line);
}

/** A line safe to print: literal secrets become ****, references stay (they are not secret). */
export function maskLine(line: Line): Record<string, unknown> {
  const bird =
    line.bird.transport === 'flow'
      ? { ...line.bird, flowSecret: maskSecretRef(line.bird.flowSecret), flowSigningSecret: maskSecretRef(line.bird.flowSigningSecret) }
      : { ...line.bird, accessKey: maskSecretRef(line.bird.accessKey), webhookSigningKey: maskSecretRef(line.bird.webhookSigningKey) };
  return {
    ...line,
    appSecrets: line.appSecrets.map((s) => maskSecretRef(s)),
    outboundKeys: (line.outboundKeys ?? []).map((s) => maskSecretRef(s)),
    verifyToken: maskSecretRef(line.verifyToken),
    accessToken: maskSecretRef(line.accessToken),
    bird,
  };
}

/** The line's Bird target with its secret resolved, ready for the Bird client. */
export async function resolveBirdTarget(line: Line, secrets: SecretResolver): Promise<BirdTarget> {
  if (line.bird.transport === 'conversations') return { ...line.bird, accessKey: await secrets.resolve(line.bird.accessKey) };
  const { flowSecret, flowSigningSecret } = line.bird;
  return {
    ...line.bird,
    flowSecret: await secrets.resolve(flowSecret),
    ...(flowSigningSecret !== undefined ? { flowSigningSecret: await secrets.resolve(flowSigningSecret) } : {}),
  };
}
