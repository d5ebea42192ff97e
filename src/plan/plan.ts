// Planning: from an inventory and the requested arches to what each arch will do. Pure: it touches
// no host, so `farm inventory check` can show the plan and targets can be checked before a build.

import type { Arch } from '../core/arch.ts';
import { ARCHES } from '../core/arch.ts';
import type { ImageType, LoadedInventory, Pool, Target, Worker } from '../inventory/schema.ts';
import { renderName } from '../naming.ts';
import { imageTypesFor } from './image-types.ts';
import { builderRuns } from '../../workers/bib/layout.ts';

export interface ArchPlan {
  arch: Arch;
  types: ImageType[];
  /** bib invocations; each writes to its own output dir. */
  runs: ImageType[][];
  /** Workers of this arch, in inventory order (the scheduler spreads the runs over the healthy ones). */
  workers: Worker[];
  /** Pools of this arch, in inventory order: VMs taken when the static workers are not enough. */
  pools: Pool[];
  targets: Target[];
  imageName: string;
}

export interface BuildPlan {
  buildId: string;
  arches: ArchPlan[];
  /** Requested arches that cannot build, with the reason (they fail; the others go on). */
  unbuildable: Array<{ arch: Arch; reason: string }>;
}

/** Arches `--arch all` means: every arch the inventory has a worker or a section for. */
export function inventoryArches(loaded: LoadedInventory): Arch[] {
  const inv = loaded.inventory;
  return ARCHES.filter((a) => inv.workers.some((w) => w.arch === a) || inv.pools.some((p) => p.arch === a) || inv.arches[a] !== undefined);
}

export function planBuild(loaded: LoadedInventory, arches: readonly Arch[], buildId: string): BuildPlan {
  const inv = loaded.inventory;
  const plan: BuildPlan = { buildId, arches: [], unbuildable: [] };
  for (const arch of arches) {
    const workers = inv.workers.filter((w) => w.arch === arch);
    const pools = inv.pools.filter((p) => p.arch === arch);
    if (workers.length === 0 && pools.length === 0) {
      plan.unbuildable.push({
        arch,
        reason: `no worker of arch ${arch} in ${loaded.file}: add one under workers: with arch: ${arch}`,
      });
      continue;
    }
    const config = inv.arches[arch];
    const types = imageTypesFor(config);
    plan.arches.push({
      arch,
      types,
      runs: builderRuns(types),
      workers,
      pools,
      targets: config?.targets ?? [],
      imageName: renderName(inv.naming.template, { name: inv.naming.name, arch, buildId }),
    });
  }
  return plan;
}
