// Whether a trigger builds: yes when forced, when nothing has succeeded yet, or when the build key
// differs from the last successful build's. Shared by `farm build --if-changed` and `farm serve`.

import { resolve } from 'node:path';
import type { LoadedInventory } from '../inventory/schema.ts';
import { lastSuccessful, type BuildSummary } from '../records/history.ts';
import { computeBuildKey, type BuildKey, type KeyOptions } from './key.ts';

export interface Decision {
  build: boolean;
  key: BuildKey;
  last?: BuildSummary;
  /** One line saying why, for logs and the status page. */
  reason: string;
}

export function buildsDirOf(loaded: LoadedInventory): string {
  return resolve(loaded.dir, loaded.inventory.settings.builds_dir);
}

export async function decideBuild(loaded: LoadedInventory, opts: KeyOptions & { force?: boolean }): Promise<Decision> {
  const [key, last] = await Promise.all([computeBuildKey(loaded, opts), lastSuccessful(buildsDirOf(loaded))]);
  const withLast = last ? { last } : {};
  if (opts.force) return { build: true, key, ...withLast, reason: 'forced' };
  if (!last) return { build: true, key, reason: 'no successful build yet' };
  if (last.key === key.key) {
    return { build: false, key, last, reason: `up to date: build ${last.buildId} has key ${key.key}` };
  }
  return {
    build: true,
    key,
    last,
    reason: last.key ? `key changed since build ${last.buildId} (${changedParts(last, key)})` : `build ${last.buildId} has no key`,
  };
}

/** Which parts changed, when the last build recorded them (builds/<id>/key.json). */
export function changedParts(last: BuildSummary, key: BuildKey): string {
  const before = last.keyParts;
  if (!before) return 'inputs changed';
  const names = new Set([...Object.keys(before), ...Object.keys(key.parts)]);
  const changed = [...names].filter((n) => before[n] !== key.parts[n]).sort();
  return changed.length ? `changed: ${changed.join(', ')}` : 'inputs changed';
}
