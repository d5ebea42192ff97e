import { defineCommand } from 'citty';
import { inventoryArg, jsonArg } from './args.ts';

export const rollbackArgs = {
  ...inventoryArg,
  build: { type: 'positional', description: 'Build id, e.g. 20261121t101500z', required: true, valueHint: 'BUILD_ID' },
  force: { type: 'boolean', description: 'Also remove released and current images' },
  ...jsonArg('Print what was removed as JSON'),
} as const;

export default defineCommand({
  meta: { name: 'rollback', description: "Delete all of a build's images on every target (found by their tags), with snapshots, objects and volumes" },
  args: rollbackArgs,
  run: async (ctx) => (await import('../actions/lifecycle.ts')).rollback(ctx),
});
