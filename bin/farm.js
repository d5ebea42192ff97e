#!/usr/bin/env node
// The farm CLI. TypeScript runs directly through tsx's loader, so `npm ci` is the only install step.
import { register } from 'tsx/esm/api';

register();
const { run } = await import('../src/cli/main.ts');
await run(process.argv.slice(2));
