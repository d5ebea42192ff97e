import { defineCommand } from 'citty';
import { inventoryArg, jsonArg } from './args.ts';

export const imagesArgs = {
  ...inventoryArg,
  ...jsonArg('Print the images as a JSON array'),
  remote: { type: 'boolean', description: 'Ask the targets what they hold (channel, age, last launch), not the build records' },
  limit: { type: 'string', description: 'Show only the N most recently published images', valueHint: 'N' },
} as const;

export default defineCommand({
  meta: { name: 'images', description: 'List the images the farm has published, by target, newest first, with the build that made them' },
  args: imagesArgs,
  run: async (ctx) => (await import('../actions/images.ts')).images(ctx),
});
