import { defineCommand } from 'citty';
import { inventoryArg } from './args.ts';

export const serveArgs = {
  ...inventoryArg,
  listen: { type: 'string', description: 'Listen on HOST:PORT instead of service.listen (port 0 picks a free one)', valueHint: 'HOST:PORT' },
} as const;

export default defineCommand({
  meta: {
    name: 'serve',
    description: 'Run the build service: rebuild on source changes, a schedule, inactivity, API calls and push webhooks; status page, API and metrics',
  },
  args: serveArgs,
  run: async (ctx) => (await import('../actions/serve.ts')).serve(ctx),
});
