import { existsSync } from 'node:fs';

/** Debian's package, which `.ci/run` installs; elsewhere (macOS, other distributions) CHROMIUM_PATH names the binary. */
const DEBIAN_CHROMIUM = '/usr/bin/chromium';

/** The Chromium the console's browser tests drive, or an error that says how to get one. */
export function chromiumPath(env: NodeJS.ProcessEnv = process.env): string {
  const path = env.CHROMIUM_PATH || DEBIAN_CHROMIUM;
  if (existsSync(path)) return path;
  const source = env.CHROMIUM_PATH ? `CHROMIUM_PATH (${path})` : path;
  throw new Error(`${source} is missing: on Debian \`sudo apt-get install -y chromium\` (.ci/run does this); elsewhere set CHROMIUM_PATH to a Chromium or Chrome binary`);
}
