// bib's caches on a static worker: the osbuild store (--store) and the rpm metadata (--rpmmd)
// live under the worker's cache dir and are mounted into every builder run, so a rebuild reuses
// what the last one fetched and built (minutes per build on real workers). After the worker's
// runs they are measured, and emptied when over max_gib: a store that only grows would fill the
// disk bib itself needs. Emptying is the trim: osbuild keeps no age index to trim by, and a cold
// cache costs one slower build.

import { posix } from 'node:path';
import type { WorkerTransport } from '../transport.ts';

export interface BibCache {
  dir: string;
  max_gib: number;
}

const PARTS = ['store', 'rpmmd'] as const;

/** The binds and bib arguments for a run with the cache. */
export function cacheMounts(cache: BibCache): { binds: string[]; args: string[] } {
  return {
    binds: PARTS.map((p) => `${posix.join(cache.dir, p)}:/${p}`),
    args: ['--store', '/store', '--rpmmd', '/rpmmd'],
  };
}

export async function ensureCache(transport: WorkerTransport, cache: BibCache, signal: AbortSignal): Promise<void> {
  await transport.exec(['mkdir', '-p', '--', ...PARTS.map((p) => posix.join(cache.dir, p))], { signal });
}

/** Measures the cache; empties it when over its bound. Returns the line for the build log. */
export async function trimCache(transport: WorkerTransport, cache: BibCache): Promise<string> {
  const r = await transport.exec(['du', '-sb', '--', cache.dir], { check: false });
  const bytes = Number(/^(\d+)/.exec(r.stdout)?.[1] ?? NaN);
  if (!Number.isFinite(bytes)) return `cache ${cache.dir}: could not be measured (${r.stderr.trim() || 'du printed nothing'})`;
  const gib = (bytes / 2 ** 30).toFixed(2);
  if (bytes <= cache.max_gib * 2 ** 30) return `cache ${cache.dir}: ${gib} GiB, kept (bound ${cache.max_gib} GiB)`;
  const dirs = PARTS.map((p) => posix.join(cache.dir, p));
  await transport.exec(['rm', '-rf', '--', ...dirs]);
  await transport.exec(['mkdir', '-p', '--', ...dirs]);
  return `cache ${cache.dir}: ${gib} GiB is over its bound of ${cache.max_gib} GiB: emptied`;
}
