// `farm workers sweep`, and the same at the start of every build with pools: pool VMs an earlier
// run took and never gave back (a SIGKILLed coordinator, a release that failed) are found in the
// builds' records and given back when they are past their pool's lifetime or the process that
// took them is gone. A VM a live build still uses is left alone until its lifetime ends.

import { readdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from '../core/errors.ts';
import type { LoadedInventory, Pool } from '../inventory/schema.ts';
import { BuildRecord } from '../records/build-record.ts';
import type { PoolAllocationRecord } from '../records/state.ts';
import type { PoolProvider } from '../../workers/pools/types.ts';
import { providerFor } from './pools.ts';

export interface SweepItem {
  build: string;
  pool: string;
  provider: string;
  id: string;
  host?: string | undefined;
  ageSeconds: number;
  reason: 'past its lifetime' | 'its coordinator is gone' | 'in use';
  outcome: 'given back' | 'would be given back' | 'left' | 'failed' | 'pool not in the inventory';
  error?: string;
}

export interface SweepOptions {
  dryRun?: boolean;
  now?: Date;
  providers?: (pool: Pool) => PoolProvider;
  onItem?: (item: SweepItem) => void;
}

/** True when `owner` is a process of this machine that is no longer running. */
function ownerGone(owner: PoolAllocationRecord['owner']): boolean {
  if (!owner || owner.host !== hostname()) return false;
  if (owner.pid === process.pid) return false;
  try {
    process.kill(owner.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export async function sweepPools(loaded: LoadedInventory, opts: SweepOptions = {}): Promise<SweepItem[]> {
  const buildsDir = loaded.inventory.settings.builds_dir;
  const now = (opts.now ?? new Date()).getTime();
  const providers = opts.providers ?? providerFor;
  const names = await readdir(buildsDir).catch(() => [] as string[]);
  const items: SweepItem[] = [];
  for (const name of names.sort()) {
    const dir = join(buildsDir, name);
    const record = await BuildRecord.open(dir).catch(() => undefined);
    const open = (record?.current.pools ?? []).filter((p) => !p.at.released);
    if (!record || open.length === 0) continue;
    let ownerDied = false;
    for (const p of open) {
      const ageSeconds = Math.max(0, Math.round((now - Date.parse(p.at.requested)) / 1000));
      const gone = ownerGone(p.owner);
      ownerDied ||= gone;
      const reason: SweepItem['reason'] = ageSeconds > p.lifetime_s ? 'past its lifetime' : gone ? 'its coordinator is gone' : 'in use';
      const item: SweepItem = { build: record.buildId, pool: p.pool, provider: p.provider, id: p.id, host: p.host, ageSeconds, reason, outcome: 'left' };
      const pool = loaded.inventory.pools.find((x) => x.name === p.pool);
      if (reason === 'in use') {
        // left
      } else if (!pool) {
        item.outcome = 'pool not in the inventory';
      } else if (opts.dryRun) {
        item.outcome = 'would be given back';
      } else {
        try {
          await providers(pool).release({ id: p.id, data: p.data });
          await record.poolAllocation({ pool: p.pool, id: p.id, at: { released: new Date().toISOString() }, releasedBy: 'sweep' });
          item.outcome = 'given back';
        } catch (err) {
          item.outcome = 'failed';
          item.error = errorMessage(err);
          await record.poolAllocation({ pool: p.pool, id: p.id, releaseError: item.error }).catch(() => undefined);
        }
      }
      items.push(item);
      opts.onItem?.(item);
    }
    // The run that was killed never ended its record: it does now, so it is not taken for running.
    if (ownerDied && !opts.dryRun) await record.closeIfRunning(false, 'the coordinator was killed before the build ended').catch(() => undefined);
  }
  return items;
}
