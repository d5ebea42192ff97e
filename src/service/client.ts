// `farm build --server URL`: queue a build on a running `farm serve` instead of building here.
// The token comes from FARM_TOKEN in the environment, never from the command line (ps shows argv).

import type { Arch } from '../core/arch.ts';
import { FarmError, errorMessage } from '../core/errors.ts';
import type { RunView } from './views.ts';

export interface QueuedBuild {
  outcome: 'queued' | 'coalesced';
  status: string;
  run: RunView;
  url: string;
}

export async function requestBuild(
  server: string,
  opts: { token: string | undefined; arches?: Arch[]; force: boolean; signal: AbortSignal },
): Promise<QueuedBuild & { statusUrl: string }> {
  let base: URL;
  try {
    base = new URL(server);
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new FarmError('USAGE', `--server ${server}: not an http:// or https:// URL`, { hint: 'e.g. --server http://127.0.0.1:8080' });
  }
  if (!opts.token) throw new FarmError('USAGE', 'FARM_TOKEN is not set', { hint: "export FARM_TOKEN with the service's API token (its service.token_env)" });
  const endpoint = new URL('api/builds', base.href.endsWith('/') ? base : new URL(base.href + '/'));
  let res: Response;
  try {
    res = await fetch(endpoint, {
      method: 'POST',
      headers: { authorization: `Bearer ${opts.token}`, 'content-type': 'application/json', 'user-agent': 'farm build --server' },
      body: JSON.stringify({ ...(opts.arches ? { arches: opts.arches } : {}), force: opts.force }),
      signal: AbortSignal.any([opts.signal, AbortSignal.timeout(30_000)]),
    });
  } catch (err) {
    if (opts.signal.aborted) throw new FarmError('ABORTED', 'cancelled');
    throw new FarmError('USAGE', `cannot reach farm serve at ${endpoint.origin}: ${errorMessage((err as Error).cause ?? err)}`, { hint: 'check --server and that `farm serve` runs there' });
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = { error: text.slice(0, 200) };
  }
  if (res.status === 401 || res.status === 403) {
    throw new FarmError('USAGE', `farm serve refused the build: ${(body as { error?: string }).error ?? res.status}`, { hint: "check FARM_TOKEN against the service's token" });
  }
  if (res.status !== 202) throw new FarmError('STATE', `farm serve answered ${res.status}: ${(body as { error?: string }).error ?? text.slice(0, 200)}`);
  const queued = body as QueuedBuild;
  return { ...queued, statusUrl: new URL(queued.url, endpoint).href };
}
