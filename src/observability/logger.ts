import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Paths that may hold secrets, tokens or signatures; pino removes them before serialising. */
const REDACT_PATHS = [
  'secret',
  'token',
  'accessToken',
  'accessKey',
  'appSecrets',
  'verifyToken',
  'flowSecret',
  'flowSigningSecret',
  'authorization',
  'signature',
  '*.secret',
  '*.token',
  '*.accessToken',
  '*.accessKey',
  '*.appSecrets',
  '*.verifyToken',
  '*.flowSecret',
  '*.flowSigningSecret',
  '*.authorization',
  '*.signature',
  'headers.authorization',
  'headers["x-hub-signature-256"]',
  'req.headers.authorization',
  'req.headers["x-hub-signature-256"]',
];

/**
 * A wamid is base64 of a protobuf that starts with the user's phone number. Every log line keeps
 * only its tail (the per-message part), enough to match a DLQ `eventKey`, never enough to decode.
 */
const WAMID = /wamid\.[A-Za-z0-9+/_=-]{12,}/g;
export function maskWamids(line: string): string {
  return line.includes('wamid.') ? line.replace(WAMID, (wamid) => `wamid.…${wamid.slice(-10)}`) : line;
}

/**
 * Readable local logs: pino-pretty (a devDependency, so never in the production image) when
 * stdout is a terminal and the module can be loaded; undefined (pino's JSON on stdout) otherwise.
 * Redaction and wamid masking happen before the line reaches this stream.
 */
export function prettyDestination(
  options: { isTTY?: boolean; destination?: NodeJS.WritableStream; load?: () => unknown } = {},
): DestinationStream | undefined {
  if (!(options.isTTY ?? process.stdout.isTTY)) return undefined;
  let pretty: (options: Record<string, unknown>) => DestinationStream;
  try {
    // A runtime require on purpose: the module is optional, and absent from the production image.
    pretty = (options.load ?? (() => require('pino-pretty')))() as typeof pretty;
  } catch {
    return undefined;
  }
  return pretty({ colorize: options.destination === undefined, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name', sync: true, destination: options.destination ?? 1 });
}

export function createLogger(options: { level: string; name?: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      hooks: { streamWrite: maskWamids },
      level: options.level,
      name: options.name ?? 'wa-ingress',
      base: { pid: process.pid },
      redact: { paths: REDACT_PATHS, remove: true },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? prettyDestination(),
  );
}

/**
 * Phone numbers and WhatsApp user ids are personal data: logs keep the first 4 and last 2
 * digits, enough to tell lines apart in an incident, never enough to dial.
 */
export function maskPhone(value: string | undefined | null): string | undefined {
  if (value === undefined || value === null) return undefined;
  const s = String(value);
  if (s.length <= 6) return '*'.repeat(s.length);
  return `${s.slice(0, 4)}${'*'.repeat(s.length - 6)}${s.slice(-2)}`;
}
