import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SYNTHESIZED_TEMPLATE_ENV, synth } from './template';

/**
 * Synthesis is the slow part (seconds), and every test file asserts on the same default stack:
 * synthesize it once here and let the workers read the JSON.
 */
export default function globalSetup(): void {
  const path = join(tmpdir(), `wa-ingress-infra-template-${process.pid}.json`);
  writeFileSync(path, JSON.stringify(synth().template.toJSON()));
  process.env[SYNTHESIZED_TEMPLATE_ENV] = path;
}
