import { Writable } from 'node:stream';
import { createLogger, prettyDestination } from '../../src/observability/logger';

function sink() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { stream, text: () => chunks.join('') };
}

describe('local logs', () => {
  it('on a terminal, pino-pretty renders readable lines, still redacted and wamid-masked', () => {
    const out = sink();
    const destination = prettyDestination({ isTTY: true, destination: out.stream });
    expect(destination).toBeDefined();
    const logger = createLogger({ level: 'info', destination });
    logger.info({ flowSecret: 'never-shown', eventKey: 'msg#1#wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=' }, 'event delivered to Bird');
    const text = out.text();
    expect(text).toMatch(/INFO.*event delivered to Bird/);
    expect(() => JSON.parse(text)).toThrow(); // not JSON
    expect(text).not.toContain('never-shown');
    expect(text).not.toContain('HBgLMTY1MDU1NTEyMzQ');
  });

  it('JSON otherwise: when stdout is not a terminal, or pino-pretty is not installed (the production image)', () => {
    expect(prettyDestination({ isTTY: false })).toBeUndefined();
    expect(
      prettyDestination({
        isTTY: true,
        load: () => {
          throw Object.assign(new Error("Cannot find module 'pino-pretty'"), { code: 'MODULE_NOT_FOUND' });
        },
      }),
    ).toBeUndefined();
  });
});
