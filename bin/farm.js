#!/usr/bin/env node
// The farm CLI. The version and usage pages are answered in plain JavaScript (bin/fast-path.js);
// everything else runs the TypeScript directly through tsx's loader, so `npm ci` is the only
// install step.
import { answerFast } from './fast-path.js';

const argv = process.argv.slice(2);
const code = answerFast(argv);
if (code !== undefined) {
  process.exitCode = code;
} else {
  const { register } = await import('tsx/esm/api');
  register();
  const { run } = await import('../src/cli/main.ts');
  await run(argv);
}
