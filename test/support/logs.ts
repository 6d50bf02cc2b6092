import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/observability/logger';

/** A real pino logger whose JSON lines are kept in memory, so tests can assert on what was logged. */
export function capturedLogger(level = 'debug'): { logger: Logger; lines: string[]; text(): string } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  const logger = createLogger({ level, destination });
  return { logger, lines, text: () => lines.join('\n') };
}
