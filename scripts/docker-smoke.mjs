#!/usr/bin/env node
/**
 * Smoke test of the Dockerfile where no Docker engine runs: parse the Dockerfile, replay its stages
 * in temp dirs (COPY from the context or another stage, RUN with the stage's ENV), then start the
 * final stage's ENTRYPOINT with each role (the worker, then the CMD role) with the image's ENV and
 * the environment an operator would give it, against local AWS stand-ins. Checks /healthz, the
 * HEALTHCHECK command, for ingress /readyz and one signed webhook landing on SQS, and that SIGTERM
 * drains and exits 0 within SHUTDOWN_TIMEOUT_MS.
 *
 *   node scripts/docker-smoke.mjs                 replay, then smoke worker and the CMD role
 *   node scripts/docker-smoke.mjs --role ingress  only these roles (repeatable)
 *   node scripts/docker-smoke.mjs --keep          keep the temp dir for inspection
 *   node scripts/docker-smoke.mjs --print-plan    print the parsed Dockerfile as JSON and exit
 *
 * What cannot be replayed outside Docker is said on a NOTE/SKIP line: apt-get steps (system
 * packages), USER (the process runs as the invoking user), and the node version (the host's, not
 * the image's).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const CONTEXT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

// ---------------------------------------------------------------------------------------------
// Dockerfile parsing (also used by test/dockerfile.test.ts through --print-plan)
// ---------------------------------------------------------------------------------------------

/** Splits `--flag=value` options off the front of an instruction's arguments. */
function takeFlags(rest) {
  const flags = {};
  let text = rest;
  for (;;) {
    const m = /^--([a-z-]+)(?:=(\S+))?\s*/.exec(text);
    if (!m) break;
    flags[m[1]] = m[2] ?? true;
    text = text.slice(m[0].length);
  }
  return { flags, text };
}

/** JSON (exec) form `["a","b"]`, or undefined for the shell form. */
function execForm(text) {
  if (!text.trim().startsWith('[')) return undefined;
  try {
    const parsed = JSON.parse(text);
    return Array.isArray(parsed) && parsed.every((p) => typeof p === 'string') ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** `ENV A=1 B="two words"` or the legacy `ENV A 1`. */
function parseEnv(text) {
  const env = {};
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(text)) {
    const [key, ...value] = text.split(/\s+/);
    env[key] = value.join(' ');
    return env;
  }
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g;
  for (const m of text.matchAll(re)) {
    let value = m[2];
    if (value.startsWith('"')) value = value.slice(1, -1).replace(/\\(.)/g, '$1');
    else if (value.startsWith("'")) value = value.slice(1, -1);
    env[m[1]] = value;
  }
  return env;
}

/** Logical lines: comments dropped, `\` continuations joined. */
function logicalLines(source) {
  const out = [];
  let current = '';
  for (const raw of source.split(/\r?\n/)) {
    const line = raw.trimEnd();
    if (current === '' && /^\s*#/.test(line)) continue;
    if (current !== '' && /^\s*#/.test(line)) continue; // comments inside a continuation
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    current += line;
    if (current.trim() !== '') out.push(current.trim());
    current = '';
  }
  if (current.trim() !== '') out.push(current.trim());
  return out;
}

function parseDockerfile(source) {
  const stages = [];
  for (const line of logicalLines(source)) {
    const m = /^([A-Za-z]+)\s+([\s\S]*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile: cannot parse "${line}"`);
    const op = m[1].toUpperCase();
    const { flags, text } = takeFlags(m[2]);
    if (op === 'FROM') {
      const [image, as, name] = text.split(/\s+/);
      stages.push({ image, name: as?.toUpperCase() === 'AS' ? name : String(stages.length), instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`Dockerfile: ${op} before any FROM`);
    const instruction = { op, flags, text };
    if (['RUN', 'CMD', 'ENTRYPOINT'].includes(op)) instruction.exec = execForm(text);
    if (op === 'ENV') instruction.env = parseEnv(text);
    if (op === 'COPY' || op === 'ADD') {
      const parts = execForm(text) ?? text.split(/\s+/);
      instruction.sources = parts.slice(0, -1);
      instruction.dest = parts.at(-1);
    }
    if (op === 'HEALTHCHECK') {
      const hc = /^CMD\s+([\s\S]*)$/.exec(text);
      instruction.command = hc ? (execForm(hc[1]) ?? hc[1]) : undefined;
    }
    stage.instructions.push(instruction);
  }
  return { stages };
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

let passed = 0;
let failed = 0;
const t0 = Date.now();
const since = (t) => `${((Date.now() - t) / 1000).toFixed(1)}s`;
const pass = (what) => {
  passed++;
  console.log(`PASS ${what}`);
};
const fail = (what) => {
  failed++;
  console.log(`FAIL ${what}`);
};
const note = (what) => console.log(`NOTE ${what}`);

class SmokeFailure extends Error {}
function check(ok, what) {
  if (ok) pass(what);
  else {
    fail(what);
    throw new SmokeFailure(what);
  }
}

// ---------------------------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------------------------

function dockerignore() {
  const file = join(CONTEXT, '.dockerignore');
  if (!existsSync(file)) return () => false;
  const patterns = readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((p) => p.replace(/^\/+|\/+$/g, ''))
    .map((p) => new RegExp(`^${p.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')}(/.*)?$`));
  return (rel) => patterns.some((re) => re.test(rel) || re.test(posix.basename(rel)));
}

/** Context paths a COPY source names; `*` globs within one directory level. */
function expandSource(source) {
  if (!source.includes('*')) return existsSync(join(CONTEXT, source)) ? [source] : [];
  const dir = posix.dirname(source);
  const re = new RegExp(`^${posix.basename(source).split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return readdirSync(join(CONTEXT, dir))
    .filter((f) => re.test(f))
    .map((f) => (dir === '.' ? f : posix.join(dir, f)));
}

function copyInto(from, destDir, dest, ignored) {
  const target = dest.endsWith('/') || dest === '.' || dest === './' ? join(destDir, dest, posix.basename(from.rel)) : join(destDir, dest);
  cpSync(from.abs, target, {
    recursive: true,
    filter: (src) => !ignored || !ignored(relative(CONTEXT, src).split('\\').join('/')),
  });
}

function run(command, cwd, env) {
  const started = Date.now();
  const res = spawnSync('sh', ['-c', command], { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (res.status !== 0) {
    const output = `${res.stdout}${res.stderr}`;
    // npm's usage text after an EUSAGE error buries the one line that matters.
    const lines = output.split('\n');
    const shown = /code EUSAGE/.test(output) ? lines.filter((l) => /npm error (code|Missing|Invalid|`npm ci`)/.test(l)) : lines;
    process.stdout.write(`${shown.join('\n').slice(-4000)}\n`);
    if (/Missing: .+ from lock file/.test(output)) {
      note(
        'package-lock.json lacks entries npm ci needs (typically the other platforms\' optional binaries, ' +
          'e.g. @swc/core-darwin-*): a real `docker build` fails the same way. Regenerate the lockfile ' +
          'against a registry that serves every platform, or add those entries.',
      );
    }
  }
  return { ok: res.status === 0, took: since(started) };
}

/** Replays one stage into its own dir; returns what starting the image needs. */
function replayStage(stage, dir, stagesByName, ignored) {
  let workdir = '/';
  const env = {};
  let user;
  let entrypoint;
  let cmd;
  let healthcheck;
  // The stage's dir stands for its first WORKDIR; paths outside it cannot be replayed.
  const local = (containerPath) => {
    const abs = posix.resolve(workdir, containerPath);
    const rel = stage.workdir === undefined ? '..' : posix.relative(stage.workdir, abs);
    if (rel.startsWith('..')) throw new SmokeFailure(`${stage.name}: ${abs} is outside the first WORKDIR; the replay maps only that`);
    return join(dir, rel);
  };
  for (const ins of stage.instructions) {
    switch (ins.op) {
      case 'WORKDIR':
        workdir = posix.resolve(workdir, ins.text);
        stage.workdir ??= workdir;
        break;
      case 'ENV':
        Object.assign(env, ins.env);
        break;
      case 'COPY': {
        const destDir = local('.');
        if (ins.flags.from) {
          const source = stagesByName.get(ins.flags.from);
          if (!source) throw new SmokeFailure(`COPY --from=${ins.flags.from}: no such stage`);
          for (const src of ins.sources) {
            const abs = join(source.dir, posix.relative(source.workdir, posix.resolve(source.workdir, src)));
            copyInto({ abs, rel: src }, destDir, ins.dest, undefined);
          }
        } else {
          for (const src of ins.sources) {
            const matches = expandSource(src);
            if (matches.length === 0) throw new SmokeFailure(`COPY ${src}: nothing in the build context matches`);
            for (const rel of matches) {
              if (ignored(rel)) throw new SmokeFailure(`COPY ${rel}: excluded by .dockerignore`);
              copyInto({ abs: join(CONTEXT, rel), rel }, destDir, matches.length > 1 ? './' : ins.dest, ignored);
            }
          }
        }
        break;
      }
      case 'RUN': {
        const command = ins.exec ? ins.exec.join(' ') : ins.text;
        if (/\bapt-get\b/.test(command)) {
          console.log(`SKIP ${stage.name}: RUN ${command.slice(0, 80)}... (system packages; no Docker here)`);
          break;
        }
        // The host's npm config and cache stand in for the cache mount.
        const result = run(command, local('.'), { ...process.env, ...env });
        check(result.ok, `${stage.name}: RUN ${command} (${result.took})`);
        break;
      }
      case 'USER':
        user = ins.text;
        break;
      case 'ENTRYPOINT':
        entrypoint = ins.exec ?? ['sh', '-c', ins.text];
        break;
      case 'CMD':
        cmd = ins.exec ?? ['sh', '-c', ins.text];
        break;
      case 'HEALTHCHECK':
        healthcheck = ins.command;
        break;
      default:
        break; // EXPOSE, LABEL, ARG...: nothing to replay
    }
  }
  return { env, user, entrypoint, cmd, healthcheck, workdir };
}

// ---------------------------------------------------------------------------------------------
// Running the image
// ---------------------------------------------------------------------------------------------

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(probe, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (last.ok) return last;
    } catch (error) {
      last = { ok: false, error };
    }
    await sleep(100);
  }
  return last ?? { ok: false };
}

/** The app process under test, killed on the way out if a check failed while it ran. */
let running;

const APP_SECRET = 'smoke-app-secret';
const SMOKE_CONSOLE_TOKEN = 'smoke-console-token-0123456789';
const SMOKE_RESOURCES = { linesTable: 'wa-ingress-smoke-lines', dedupeTable: 'wa-ingress-smoke-dedupe', bucket: 'wa-ingress-smoke' };
const SHUTDOWN_BOUND_MS = 10_000;

/** Starts ENTRYPOINT + role as ECS would, checks health (and the webhook path for ingress), then SIGTERM. */
async function smokeRole(role, { entrypoint, dir, image, root, standIns, clients, GetQueueAttributesCommand }) {
  // The environment an operator gives the task (infra/lib/services.ts), pointed at the stand-ins.
  const port = await freePort();
  // The ingress task as infra/ runs it with the console route configured: the console on its own port.
  const consolePort = role === 'ingress' ? await freePort() : undefined;
  const env = {
    PATH: process.env.PATH,
    HOME: join(root, 'home'),
    ...image.env,
    PORT: String(port),
    LOG_LEVEL: 'info',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: standIns.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: standIns.credentials.secretAccessKey,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ENDPOINT_URL_SQS: standIns.endpoints.sqs,
    AWS_ENDPOINT_URL_S3: standIns.endpoints.s3,
    AWS_ENDPOINT_URL_DYNAMODB: standIns.endpoints.dynamodb,
    S3_FORCE_PATH_STYLE: 'true',
    SQS_QUEUE_URL: standIns.queueUrl,
    SQS_DLQ_URL: standIns.dlqUrl,
    SQS_VISIBILITY_TIMEOUT_SECONDS: '30',
    // local-aws-sqs answers a long poll only when its wait ends; the worker's drain lets a receive
    // return (SHUTDOWN_TIMEOUT_MS must outlast the wait), so keep it short like the embedded default.
    SQS_WAIT_TIME_SECONDS: '1',
    S3_BUCKET: SMOKE_RESOURCES.bucket,
    DYNAMODB_LINES_TABLE: SMOKE_RESOURCES.linesTable,
    DYNAMODB_DEDUPE_TABLE: SMOKE_RESOURCES.dedupeTable,
    CREATE_MISSING_RESOURCES: 'false',
    WHATSAPP_VERIFY_TOKEN: 'smoke-verify-token',
    WHATSAPP_APP_SECRETS: APP_SECRET,
    WHATSAPP_ACCESS_TOKEN: 'smoke-access-token',
    SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_BOUND_MS),
    ...(consolePort ? { CONSOLE_PORT: String(consolePort), CONSOLE_TOKEN: SMOKE_CONSOLE_TOKEN } : {}),
  };
  const argv = [...entrypoint, role];
  const logFile = join(root, `${role}.log`);
  const log = [];
  const child = spawn(argv[0], argv.slice(1), { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running = child;
  child.stdout.on('data', (b) => log.push(b));
  child.stderr.on('data', (b) => log.push(b));
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal, at: Date.now() })));
  pass(`${role}: started ${argv.join(' ')} (port ${port})`);

  const base = `http://127.0.0.1:${port}`;
  const startedAt = Date.now();
  const health = await Promise.race([
    waitFor(async () => ({ ok: (await fetch(`${base}/healthz`)).status === 200 }), 30_000),
    exited.then((e) => ({ ok: false, exit: e })),
  ]);
  if (!health.ok) writeFileSync(logFile, Buffer.concat(log));
  check(
    health.ok,
    health.exit
      ? `${role}: GET /healthz: the process exited first (code ${health.exit.code}); log:\n${Buffer.concat(log).toString().slice(-3000)}`
      : `${role}: GET /healthz 200 (${Date.now() - startedAt} ms after start)`,
  );

  if (image.healthcheck) {
    const hc = Array.isArray(image.healthcheck) ? image.healthcheck : ['sh', '-c', image.healthcheck];
    const res = spawnSync(hc[0], hc.slice(1), { cwd: dir, env, encoding: 'utf8', timeout: 5000 });
    check(res.status === 0, `${role}: HEALTHCHECK command exits 0 (got ${res.status})`);
  }

  if (role === 'ingress' || role === 'all') {
    const ready = await waitFor(async () => ({ ok: (await fetch(`${base}/readyz`)).status === 200 }), 10_000);
    check(ready.ok, `${role}: GET /readyz 200 (SQS reachable)`);

    // A real Meta payload from the project's own copy, sent byte for byte as Meta would.
    const fixture = join(process.env.FIXTURES_DIR ?? join(CONTEXT, 'test', 'fixtures', 'meta-webhooks'), 'message-text.json');
    if (!existsSync(fixture)) throw new SmokeFailure(`webhook fixture not found: ${fixture}`);
    const body = readFileSync(fixture);
    const signature = `sha256=${createHmac('sha256', APP_SECRET).update(body).digest('hex')}`;
    const res = await fetch(`${base}/webhooks/whatsapp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
      body,
    });
    const attrs = await clients.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: standIns.queueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }),
    );
    const depth = Number(attrs.Attributes?.ApproximateNumberOfMessages ?? 0);
    check(res.status === 200 && depth === 1, `${role}: signed webhook answered ${res.status} and is on SQS (${depth} message)`);
  }

  if (consolePort) {
    // The image carries the console's built page (npm run build) and serves it on CONSOLE_PORT.
    const consoleBase = `http://127.0.0.1:${consolePort}/console`;
    const page = await fetch(`${consoleBase}/`);
    const script = await fetch(`${consoleBase}/app.js`);
    check(page.status === 200 && (await page.text()).includes('app.js') && script.status === 200, `${role}: console page and assets served on CONSOLE_PORT (${page.status}, app.js ${script.status})`);
    const unauthorized = await fetch(`${consoleBase}/api/lines`);
    const lines = await fetch(`${consoleBase}/api/lines`, { headers: { authorization: `Bearer ${SMOKE_CONSOLE_TOKEN}` } });
    check(unauthorized.status === 401 && lines.status === 200, `${role}: console API 401 without the token, ${lines.status} with it`);
  }

  const termAt = Date.now();
  child.kill('SIGTERM');
  const exit = await Promise.race([exited, sleep(SHUTDOWN_BOUND_MS + 2000).then(() => undefined)]);
  writeFileSync(logFile, Buffer.concat(log));
  if (!exit) check(false, `${role}: SIGTERM: still running after ${SHUTDOWN_BOUND_MS + 2000} ms`);
  const took = exit.at - termAt;
  check(exit.code === 0 && took <= SHUTDOWN_BOUND_MS, `${role}: SIGTERM: exit code ${exit.code ?? exit.signal} after ${took} ms (bound ${SHUTDOWN_BOUND_MS} ms)`);
  running = undefined;
}

async function main() {
  const args = process.argv.slice(2);
  const plan = parseDockerfile(readFileSync(join(CONTEXT, 'Dockerfile'), 'utf8'));
  if (args.includes('--print-plan')) {
    process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
    return 0;
  }
  const keep = args.includes('--keep');
  const root = mkdtempSync(join(tmpdir(), 'wa-ingress-docker-smoke-'));
  let standIns;
  try {
    check(plan.stages.length >= 2, `Dockerfile: ${plan.stages.length} stages (${plan.stages.map((s) => `${s.name}: ${s.image}`).join(', ')})`);

    // Build every stage in order, each in its own dir (as its own filesystem).
    const ignored = dockerignore();
    const stagesByName = new Map();
    let image;
    for (const stage of plan.stages) {
      const dir = join(root, stage.name);
      const started = Date.now();
      stage.dir = dir;
      mkdirSync(dir, { recursive: true });
      image = replayStage(stage, dir, stagesByName, ignored);
      stagesByName.set(stage.name, stage);
      pass(`stage ${stage.name} replayed (${since(started)})`);
    }
    const final = plan.stages.at(-1);
    const build = plan.stages.find((s) => s !== final && existsSync(join(s.dir, 'dist')));
    if (!build) throw new SmokeFailure('no earlier stage produced dist/');

    // What the image holds: dist/ and production dependencies only.
    const shipped = readdirSync(final.dir).sort();
    check(
      shipped.every((f) => ['dist', 'node_modules', 'package.json', 'package-lock.json'].includes(f)),
      `runtime holds only package*.json, node_modules and dist (${shipped.join(', ')})`,
    );
    const devDeps = Object.keys(JSON.parse(readFileSync(join(CONTEXT, 'package.json'), 'utf8')).devDependencies ?? {});
    const leaked = devDeps.filter((d) => existsSync(join(final.dir, 'node_modules', d)));
    check(leaked.length === 0, `runtime has no devDependencies installed${leaked.length ? ` (found ${leaked.join(', ')})` : ''}`);
    if (image.user) note(`USER ${image.user} not switched: the process runs as uid ${process.getuid?.() ?? '?'}`);
    note(`node ${process.version} from the host stands in for the image's ${final.image}`);

    // AWS stand-ins from the build stage's compiled code and dev dependencies (never shipped).
    const requireBuild = createRequire(join(build.dir, 'package.json'));
    const { startAwsStandIns } = requireBuild('./dist/local/aws-standins.js');
    const { ensureResources } = requireBuild('./dist/aws/resources.js');
    const { createAwsClients } = requireBuild('./dist/aws/clients.js');
    const { GetQueueAttributesCommand } = requireBuild('@aws-sdk/client-sqs');
    standIns = await startAwsStandIns({ queueName: 'wa-ingress-smoke', dataDir: join(root, 'standins') });
    const aws = { region: 'us-east-1', endpoints: standIns.endpoints, forcePathStyle: true, credentials: standIns.credentials };
    const clients = createAwsClients(aws);
    await ensureResources(clients, SMOKE_RESOURCES);
    pass('AWS stand-ins up; queue, tables and bucket created');

    check(image.env.NODE_ENV === 'production', `image ENV NODE_ENV=${image.env.NODE_ENV}`);
    let entrypoint = image.entrypoint ?? [];
    if (entrypoint[0]?.endsWith('/tini') && !existsSync(entrypoint[0])) {
      note(`${entrypoint[0]} is not on this host: starting "${entrypoint.slice(2).join(' ')}" without tini`);
      entrypoint = entrypoint.slice(entrypoint[1] === '--' ? 2 : 1);
    }

    // The image's CMD role, and the worker that ECS runs from the same image. The worker goes
    // first, while the queue is empty: the ingress check leaves a webhook on it.
    const asked = args.flatMap((a, i) => (args[i - 1] === '--role' ? [a] : []));
    const roles = asked.length > 0 ? asked : [...new Set(['worker', ...(image.cmd ?? []).slice(0, 1)])];
    for (const role of roles) {
      await smokeRole(role, { entrypoint, dir: final.dir, image, root, standIns, clients, GetQueueAttributesCommand });
    }
    clients.destroy();
  } catch (error) {
    if (!(error instanceof SmokeFailure)) fail(`${error.stack ?? error}`);
  } finally {
    if (running) running.kill('SIGKILL');
    if (standIns) await standIns.stop().catch(() => {});
    if (keep || failed > 0) note(`temp dir kept: ${root}`);
    else rmSync(root, { recursive: true, force: true });
  }
  console.log(`docker-smoke took ${since(t0)}`);
  console.log(`docker-smoke: ${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
