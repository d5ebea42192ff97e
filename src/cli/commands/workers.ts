import { defineCommand } from 'citty';
import { archArg, inventoryArg, jsonArg } from './args.ts';

export const workersCheckArgs = {
  ...inventoryArg,
  arch: { ...archArg.arch, description: 'Only workers of these arches: all, or a list such as x86_64,s390x' },
  ...jsonArg('Print one object per worker (reachable, arch, podman, free space, builder image, problems) as JSON'),
} as const;

export const trustArgs = {
  ...inventoryArg,
  name: { type: 'positional', description: 'Worker name', required: true, valueHint: 'NAME' },
  yes: { type: 'boolean', alias: 'y', description: 'Trust without asking (only after checking the fingerprint out of band)' },
  ...jsonArg('Print the outcome (worker, key type, fingerprint, file, status) as JSON on stdout'),
} as const;

export const sweepArgs = {
  ...inventoryArg,
  'dry-run': { type: 'boolean', description: 'Only say which pool VMs would be given back' },
  ...jsonArg('Print one object per VM found (build, pool, provider, id, age, reason, outcome) as JSON'),
} as const;

const sweep = defineCommand({
  meta: { name: 'sweep', description: 'Give back pool VMs earlier runs left: past their lifetime, or their coordinator gone' },
  args: sweepArgs,
  run: async (ctx) => (await import('../actions/sweep.ts')).sweep(ctx),
});

const check = defineCommand({
  meta: { name: 'check', description: 'Probe every worker: SSH, arch, podman, free space, builder image' },
  args: workersCheckArgs,
  run: async (ctx) => (await import('../actions/workers.ts')).check(ctx),
});

const trust = defineCommand({
  meta: { name: 'trust', description: "Record a worker's SSH host key after you confirm its fingerprint" },
  args: trustArgs,
  run: async (ctx) => (await import('../actions/trust.ts')).trust(ctx),
});

export default defineCommand({
  meta: { name: 'workers', description: 'Check workers, trust their SSH host keys, or sweep pool VMs left behind' },
  subCommands: { check, trust, sweep },
});
