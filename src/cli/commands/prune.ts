import { defineCommand } from 'citty';
import { inventoryArg, jsonArg } from './args.ts';

export const pruneArgs = {
  ...inventoryArg,
  yes: { type: 'boolean', alias: 'y', description: 'Act on the plan (default: print it and change nothing)' },
  max: { type: 'string', description: 'Allow up to N deletions in this run (default: retention.max_deletions)', valueHint: 'N' },
  at: { type: 'string', description: 'Plan as of this time instead of now (ISO 8601): what prune will do later', valueHint: 'TIME' },
  ...jsonArg('Print the plan (and what was done) as JSON'),
} as const;

export default defineCommand({
  meta: { name: 'prune', description: "Deprecate, then delete, the images the inventory's retention policy lets go; a dry run unless --yes" },
  args: pruneArgs,
  run: async (ctx) => (await import('../actions/prune.ts')).prune(ctx),
});
