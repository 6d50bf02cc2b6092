import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The image's rules, checked on the Dockerfile itself (no Docker, no install). The parser is the one
 * scripts/docker-smoke.mjs replays the build with, so both read the file the same way.
 */
interface Instruction {
  op: string;
  flags: Record<string, string | true>;
  text: string;
  exec?: string[];
  env?: Record<string, string>;
  sources?: string[];
  dest?: string;
  command?: string | string[];
}
interface Stage {
  image: string;
  name: string;
  instructions: Instruction[];
}

const ROOT = join(__dirname, '..');
const plan = JSON.parse(
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'docker-smoke.mjs'), '--print-plan'], { encoding: 'utf8' }),
) as { stages: Stage[] };
const stages = plan.stages;
const final = stages[stages.length - 1]!;
const of = (stage: Stage, op: string) => stage.instructions.filter((i) => i.op === op);
const last = (stage: Stage, op: string) => of(stage, op).at(-1);
const workdirOf = (stage: Stage) => last(stage, 'WORKDIR')?.text ?? '/';

describe('Dockerfile', () => {
  it('is multi-stage, every stage on a node image pinned to a major version', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage.image).toMatch(/^node:\d+-[a-z0-9.-]+$/);
    expect(final.image).not.toMatch(/latest/);
  });

  it('builds in an earlier stage: npm ci with dev dependencies, then npm run build', () => {
    const build = stages.find((s) => s !== final && of(s, 'RUN').some((r) => /\bnpm run build\b/.test(r.text)));
    expect(build).toBeDefined();
    const runs = of(build!, 'RUN').map((r) => r.text);
    expect(runs.some((r) => /\bnpm ci\b/.test(r) && !/--omit=dev/.test(r))).toBe(true);
  });

  it('runs as a non-root user in the final stage', () => {
    const user = last(final, 'USER')?.text;
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
  });

  it('has a HEALTHCHECK on /healthz in the final stage', () => {
    const healthcheck = last(final, 'HEALTHCHECK');
    expect(healthcheck?.command).toBeDefined();
    expect(JSON.stringify(healthcheck!.command)).toContain('/healthz');
  });

  it('sets NODE_ENV=production in the final stage', () => {
    const env = Object.assign({}, ...of(final, 'ENV').map((e) => e.env));
    expect(env.NODE_ENV).toBe('production');
  });

  it('installs production dependencies only (not the npm-packaged Node: the image has its own), without install scripts', () => {
    const installs = of(final, 'RUN').filter((r) => /\bnpm (ci|install|i)\b/.test(r.text));
    expect(installs).toHaveLength(1);
    expect(installs[0]!.text).toMatch(/\bnpm ci\b/);
    expect(installs[0]!.text).toContain('--omit=dev');
    expect(installs[0]!.text).toContain('--omit=optional');
    expect(installs[0]!.text).toContain('--ignore-scripts');
  });

  it('copies only dist/ from the build stage, and no sources from the context', () => {
    const fromStages = of(final, 'COPY').filter((c) => c.flags.from !== undefined);
    expect(fromStages).toHaveLength(1);
    const copy = fromStages[0]!;
    const build = stages.find((s) => s.name === copy.flags.from);
    expect(build).toBeDefined();
    expect(copy.sources).toEqual([`${workdirOf(build!)}/dist`]);
    expect(copy.dest).toMatch(/^(\.\/)?dist\/?$/);

    const fromContext = of(final, 'COPY').filter((c) => c.flags.from === undefined);
    expect(fromContext.flatMap((c) => c.sources)).toEqual(['package.json', 'package-lock.json']);
    expect(of(final, 'ADD')).toEqual([]);
  });

  it('starts node dist/main.js under tini, with ingress as the default role', () => {
    const entrypoint = last(final, 'ENTRYPOINT')?.exec;
    expect(entrypoint).toEqual(['/usr/bin/tini', '--', 'node', 'dist/main.js']);
    const tini = of(final, 'RUN').some((r) => /apt-get install[^&]*\btini\b/.test(r.text));
    expect(tini).toBe(true);
    expect(last(final, 'CMD')?.exec).toEqual(['ingress']);
  });

  it('exposes 8080', () => {
    expect(of(final, 'EXPOSE').map((e) => e.text)).toEqual(['8080']);
  });
});

describe('.dockerignore', () => {
  it('keeps local state, dependencies, builds, tests and secrets out of the build context', () => {
    const entries = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split(/\r?\n/)
      .map((l) => l.trim().replace(/\/$/, ''))
      .filter((l) => l && !l.startsWith('#'));
    for (const required of ['.data', 'node_modules', 'dist', 'test', 'bench', 'infra', '.git', 'coverage', '*.log', '.env']) {
      expect(entries).toContain(required);
    }
  });
});
