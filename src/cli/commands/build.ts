import { defineCommand } from 'citty';
import { archArg, inventoryArg, jsonArg, targetArgs } from './args.ts';

export const buildArgs = {
  ...inventoryArg,
  ...archArg,
  ...targetArgs,
  upload: { type: 'boolean', default: true, description: 'Upload to the targets', negativeDescription: 'Build and fetch only' },
  ...jsonArg('Print the manifest (builds[], artifact ids) as JSON on stdout'),
  quiet: { type: 'boolean', alias: 'q', description: 'Keep builder output out of the terminal (it still goes to the log files)' },
  'if-changed': {
    type: 'boolean',
    description: 'Build only if the build key (sources, builder, base image digests, image types) differs from the last successful build',
  },
  force: { type: 'boolean', description: 'With --if-changed: build even when nothing changed' },
  server: {
    type: 'string',
    description: 'Queue the build on a running `farm serve` at this URL instead (token from FARM_TOKEN; takes --arch, --if-changed, --force, --json)',
    valueHint: 'URL',
  },
} as const;

export default defineCommand({
  meta: { name: 'build', description: 'Build the Containerfile into disk images on native workers, fetch, verify and upload them' },
  args: buildArgs,
  run: async (ctx) => (await import('../actions/build.ts')).build(ctx),
});
