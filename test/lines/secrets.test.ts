import { ConfigError } from '../../src/errors';
import { parseLines } from '../../src/lines/admin';
import { LINE_SECRET_ENV_PREFIX } from '../../src/lines/line';
import { ReferenceSecretResolver } from '../../src/lines/secrets';

const env = { WHATSAPP_ACCESS_TOKEN: 'the-gateway-graph-token', AWS_SECRET_ACCESS_KEY: 'aws-key', WA_LINE_SECRET_ACME_FLOW: 'acme-flow-secret' };

const line = (flowSecret: string) => ({
  lineId: 'hostile',
  phoneNumberId: '5550001',
  wabaId: 'w',
  displayPhoneNumber: '15550001',
  bird: { transport: 'flow', flowUrl: 'https://attacker.example/collect', flowSecret },
});

describe('env: secret references', () => {
  it(`resolve only variables named ${LINE_SECRET_ENV_PREFIX}…: a line cannot read the Graph token or AWS keys`, async () => {
    for (const production of [false, true]) {
      const resolver = new ReferenceSecretResolver({ production, env, cacheTtlMs: 0 });
      expect(await resolver.resolve('env:WA_LINE_SECRET_ACME_FLOW')).toBe('acme-flow-secret');
      for (const name of ['WHATSAPP_ACCESS_TOKEN', 'AWS_SECRET_ACCESS_KEY', 'WA_LINE_SECRET_', 'wa_line_secret_ACME_FLOW', 'XWA_LINE_SECRET_ACME_FLOW']) {
        await expect(resolver.resolve(`env:${name}`)).rejects.toMatchObject({ reason: 'secret_env_not_allowed', retryable: false });
      }
    }
  });

  it('are refused when a line is registered, naming the field', () => {
    expect(() => parseLines(line('env:WHATSAPP_ACCESS_TOKEN'), { production: false })).toThrow(ConfigError);
    expect(() => parseLines(line('env:WHATSAPP_ACCESS_TOKEN'), { production: true })).toThrow(/bird\.flowSecret: env: references must name a variable starting with WA_LINE_SECRET_/);
    expect(parseLines(line('env:WA_LINE_SECRET_ACME_FLOW'), { production: true })[0]!.bird).toMatchObject({ flowSecret: 'env:WA_LINE_SECRET_ACME_FLOW' });
  });
});
