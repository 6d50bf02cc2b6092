import { rmSync } from 'node:fs';
import { SYNTHESIZED_TEMPLATE_ENV } from './template';

export default function globalTeardown(): void {
  const path = process.env[SYNTHESIZED_TEMPLATE_ENV];
  if (path) rmSync(path, { force: true });
}
