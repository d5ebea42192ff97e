// `farm serve`: the build service, until SIGTERM/SIGINT.

import { resolve } from 'node:path';
import type { CommandContext } from 'citty';
import { FarmService } from '../../service/service.ts';
import type { serveArgs } from '../commands/serve.ts';
import { io } from '../io.ts';

export async function serve({ args }: CommandContext<typeof serveArgs>): Promise<void> {
  const { stderr, signal, env, cwd } = io();
  const service = await FarmService.create({ inventoryPath: resolve(cwd, args.inventory), ...(args.listen ? { listen: args.listen } : {}), env, stream: stderr });
  await service.start();
  // SIGTERM/SIGINT abort the command's signal (src/cli/main.ts); service.on_shutdown says whether
  // the running build is cancelled or finished first.
  await new Promise<void>((r) => (signal.aborted ? r() : signal.addEventListener('abort', () => r(), { once: true })));
  await service.stop();
}
