import { defineCommand } from 'citty';
import { inventoryArg, jsonArg, targetArgs } from './args.ts';

export const releaseArgs = {
  ...inventoryArg,
  build: { type: 'positional', description: 'Build id, e.g. 20261121t101500z', required: true, valueHint: 'BUILD_ID' },
  arch: { type: 'string', description: 'Release only these arches (comma-separated; default: all the build has)', valueHint: 'LIST' },
  ...targetArgs,
  ...jsonArg('Print the released images as JSON'),
} as const;

export default defineCommand({
  meta: { name: 'release', description: "Promote a build's candidate images: sharing, channel released, the current mark; runs the release hook" },
  args: releaseArgs,
  run: async (ctx) => (await import('../actions/lifecycle.ts')).release(ctx),
});
