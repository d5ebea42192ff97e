import { defineCommand } from 'citty';
import { inventoryArg, jsonArg, targetArgs } from './args.ts';

export const uploadArgs = {
  ...inventoryArg,
  build: { type: 'positional', description: 'Build id, e.g. 20261121t101500z', required: true, valueHint: 'BUILD_ID' },
  ...targetArgs,
  ...jsonArg('Print the manifest as JSON on stdout'),
} as const;

export default defineCommand({
  meta: { name: 'upload', description: "Upload a fetched build's images to the targets (pending ones only)" },
  args: uploadArgs,
  run: async (ctx) => (await import('../actions/upload.ts')).upload(ctx),
});
