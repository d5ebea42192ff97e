// `farm inventory check` and `farm inventory schema`.

import { resolve } from 'node:path';
import type { CommandContext } from 'citty';
import { InventoryError, resolveTargetName } from '../../inventory/load.ts';
import { inventoryJsonSchema } from '../../inventory/json-schema.ts';
import { inventoryArches, planBuild, type BuildPlan } from '../../plan/plan.ts';
import { renderTable } from '../../ui/table.ts';
import type { checkArgs } from '../commands/inventory.ts';
import { io, out } from '../io.ts';
import { loadFromArgs } from './args.ts';

/** What --json prints for a valid inventory: what each arch would build, where, and publish to. */
function planJson(file: string, plan: BuildPlan) {
  return {
    file,
    valid: true,
    problems: [],
    arches: plan.arches.map((a) => ({
      arch: a.arch,
      workers: a.workers.map((w) => w.name),
      types: a.types,
      builderRuns: a.runs,
      targets: a.targets.map((t) => ({ name: resolveTargetName(t), kind: t.kind })),
    })),
    unbuildable: plan.unbuildable,
  };
}

export async function check({ args }: CommandContext<typeof checkArgs>): Promise<void> {
  let loaded;
  try {
    loaded = await loadFromArgs(args);
  } catch (err) {
    // The same problems and exit code (2) as without --json, as data on stdout.
    if (args.json && err instanceof InventoryError) {
      out(JSON.stringify({ file: resolve(io().cwd, args.inventory), valid: false, problems: err.problems }, null, 2));
      io().exitCode = 2;
      return;
    }
    throw err;
  }
  const plan = planBuild(loaded, inventoryArches(loaded), '19700101t000000z');
  if (args.json) {
    out(JSON.stringify(planJson(loaded.file, plan), null, 2));
    return;
  }
  const rows = plan.arches.map((a) => [
    a.arch,
    a.workers.map((w) => w.name).join(', '),
    a.types.join(', '),
    a.runs.map((r) => r.join('+')).join(' | '),
    a.targets.map((t) => t.kind).join(', ') || '-',
  ]);
  out(`${loaded.file}: valid\n`);
  out(renderTable(['ARCH', 'WORKERS', 'TYPES', 'BUILDER RUNS', 'TARGETS'], rows));
  for (const u of plan.unbuildable) out(`${u.arch}: ${u.reason}`);
}

export function schema(): void {
  out(JSON.stringify(inventoryJsonSchema(), null, 2));
}
