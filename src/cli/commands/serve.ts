import { resolve } from 'node:path';
import { defineCommand } from 'citty';
import { parseArchList, type Arch } from '../../arch.ts';
import { FarmError } from '../../errors.ts';
import { requestBuild } from '../../service/client.ts';
import { FarmService } from '../../service/service.ts';
import { inventoryArg } from '../inventory-arg.ts';
import { io, out } from '../io.ts';

export default defineCommand({
  meta: {
    name: 'serve',
    description: 'Run the build service: rebuild on source changes, a schedule, inactivity, API calls and push webhooks; status page, API and metrics',
  },
  args: {
    ...inventoryArg,
    listen: { type: 'string', description: 'Listen on HOST:PORT instead of service.listen (port 0 picks a free one)', valueHint: 'HOST:PORT' },
  },
  async run({ args }) {
    const { stderr, signal, env, cwd } = io();
    const service = await FarmService.create({ inventoryPath: resolve(cwd, args.inventory), ...(args.listen ? { listen: args.listen } : {}), env, stream: stderr });
    await service.start();
    // SIGTERM/SIGINT abort the command's signal (src/cli/main.ts); service.on_shutdown says whether
    // the running build is cancelled or finished first.
    await new Promise<void>((r) => (signal.aborted ? r() : signal.addEventListener('abort', () => r(), { once: true })));
    await service.stop();
  },
});

/** `farm build --server URL`: queue the build on the service and print what it says of it. */
export async function queueOnServer(server: string, opts: { arch: string; ifChanged: boolean; force: boolean; json: boolean }): Promise<void> {
  const { env, signal } = io();
  const arches = opts.arch.trim() === 'all' ? undefined : parseArchListOrUsage(opts.arch);
  const queued = await requestBuild(server, { token: env.FARM_TOKEN, ...(arches ? { arches } : {}), force: !opts.ifChanged || opts.force, signal });
  if (opts.json) return out(JSON.stringify({ ...queued, url: queued.statusUrl }, null, 2));
  const r = queued.run;
  out(`${queued.outcome === 'coalesced' ? 'joined' : 'queued'} run ${r.id} on ${new URL(queued.statusUrl).origin}: ${queued.status}`);
  for (const reason of r.reasons) out(`  ${reason.kind}: ${reason.detail}`);
  out(`status: ${queued.statusUrl}`);
}

function parseArchListOrUsage(spec: string): Arch[] {
  try {
    return parseArchList(spec);
  } catch (err) {
    throw new FarmError('USAGE', (err as Error).message);
  }
}
