import { ConfigError } from '../errors';

/**
 * The hosts a line's access token may be sent to: exact names (`lookaside.fbsbx.com`) and
 * `*.suffix` wildcards (`*.fbcdn.net` matches `scontent.xx.fbcdn.net`, not `fbcdn.net` itself).
 * Matching is on the host name only: Meta serves everything on 443.
 */
export class AllowedHosts {
  private readonly exact = new Set<string>();
  private readonly suffixes: string[] = [];

  constructor(patterns: readonly string[]) {
    for (const raw of patterns) {
      const pattern = normaliseHost(raw);
      if (pattern.startsWith('*.')) {
        const suffix = pattern.slice(2);
        if (!isHostName(suffix) || !suffix.includes('.')) {
          throw new ConfigError(`MEDIA_ALLOWED_HOSTS: "${raw}" is too broad or malformed; use *.example.com`);
        }
        this.suffixes.push(`.${suffix}`);
      } else if (isHostName(pattern)) {
        this.exact.add(pattern);
      } else {
        throw new ConfigError(`MEDIA_ALLOWED_HOSTS: "${raw}" is not a host name or a *.suffix wildcard`);
      }
    }
  }

  allows(hostname: string): boolean {
    const host = normaliseHost(hostname);
    if (host.length === 0) return false;
    return this.exact.has(host) || this.suffixes.some((suffix) => host.endsWith(suffix) && host.length > suffix.length);
  }
}

function normaliseHost(value: string): string {
  return value.trim().toLowerCase().replace(/\.$/, '');
}

function isHostName(value: string): boolean {
  // DNS names and IPv4 literals; bracketed IPv6 literals as URL.hostname spells them.
  return /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(value) || /^\[[0-9a-f:.]+\]$/.test(value);
}
