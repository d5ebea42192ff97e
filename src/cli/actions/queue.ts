// `farm build --server URL`: queue the build on the service and print what it says of it.

import { requestBuild } from '../../service/client.ts';
import { io, out } from '../io.ts';
import { archListArg } from './args.ts';

export async function queueOnServer(server: string, opts: { arch: string; ifChanged: boolean; force: boolean; json: boolean }): Promise<void> {
  const { env, signal } = io();
  const arches = opts.arch.trim() === 'all' ? undefined : archListArg(opts.arch);
  const queued = await requestBuild(server, { token: env.FARM_TOKEN, ...(arches ? { arches } : {}), force: !opts.ifChanged || opts.force, signal });
  if (opts.json) return out(JSON.stringify({ ...queued, url: queued.statusUrl }, null, 2));
  const r = queued.run;
  out(`${queued.outcome === 'coalesced' ? 'joined' : 'queued'} run ${r.id} on ${new URL(queued.statusUrl).origin}: ${queued.status}`);
  for (const reason of r.reasons) out(`  ${reason.kind}: ${reason.detail}`);
  out(`status: ${queued.statusUrl}`);
}
