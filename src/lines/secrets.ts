import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PermanentError, RetryableError } from '../errors';
import { envReferenceProblem } from './line';

/**
 * Secret fields of a line hold a literal, `env:WA_LINE_SECRET_NAME` or `secretsmanager:ARN`.
 * Literals are refused in production so that no secret sits in the lines table.
 */
export type SecretRefKind = 'literal' | 'env' | 'secretsmanager';

export function secretRefKind(ref: string): SecretRefKind {
  if (ref.startsWith('env:')) return 'env';
  if (ref.startsWith('secretsmanager:')) return 'secretsmanager';
  return 'literal';
}

export function maskSecretRef(ref: string | undefined): string | undefined {
  if (ref === undefined) return undefined;
  const kind = secretRefKind(ref);
  return kind === 'literal' ? '****' : ref;
}

export interface SecretResolver {
  resolve(ref: string): Promise<string>;
}

export interface SecretResolverOptions {
  production: boolean;
  env?: NodeJS.ProcessEnv;
  secretsManager?: Pick<SecretsManagerClient, 'send'>;
  cacheTtlMs: number;
  clock?: () => number;
}

export class ReferenceSecretResolver implements SecretResolver {
  private readonly cache = new Map<string, { value: Promise<string>; expiresAt: number }>();
  private readonly clock: () => number;

  constructor(private readonly options: SecretResolverOptions) {
    this.clock = options.clock ?? Date.now;
  }

  async resolve(ref: string): Promise<string> {
    const kind = secretRefKind(ref);
    if (kind === 'literal') {
      if (this.options.production) {
        throw new PermanentError('secret_literal_refused', 'A literal secret is refused when NODE_ENV=production: use env:WA_LINE_SECRET_NAME or secretsmanager:ARN');
      }
      return ref;
    }
    if (kind === 'env') {
      const name = ref.slice('env:'.length);
      // Checked again here, not only when the line is parsed: a line in the table may predate the rule.
      const problem = envReferenceProblem(ref);
      if (problem) throw new PermanentError('secret_env_not_allowed', `Secret reference refused: ${problem}`);
      const value = (this.options.env ?? process.env)[name];
      if (!value) throw new PermanentError('secret_env_missing', `Secret reference env:${name}: the variable is not set`);
      return value;
    }
    const now = this.clock();
    const cached = this.cache.get(ref);
    if (cached && cached.expiresAt > now) return cached.value;
    const value = this.fetchSecret(ref.slice('secretsmanager:'.length));
    this.cache.set(ref, { value, expiresAt: now + this.options.cacheTtlMs });
    value.catch(() => this.cache.delete(ref));
    return value;
  }

  private async fetchSecret(secretId: string): Promise<string> {
    if (!this.options.secretsManager) throw new PermanentError('secret_store_unconfigured', 'secretsmanager: references need a Secrets Manager client');
    try {
      const out = await this.options.secretsManager.send(new GetSecretValueCommand({ SecretId: secretId }));
      if (!out.SecretString) throw new PermanentError('secret_empty', `Secret ${secretId} has no SecretString`);
      return out.SecretString;
    } catch (error) {
      if (error instanceof PermanentError) throw error;
      throw new RetryableError('secret_store_unavailable', `Could not read secret ${secretId} from Secrets Manager`, { cause: error });
    }
  }
}
