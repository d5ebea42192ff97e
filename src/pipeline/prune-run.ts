// One prune, as `farm prune` and `farm serve`'s schedule run it: plan from the targets' own
// listings (src/plan/prune.ts), then, when told to act and the plan is not refused, deprecate and
// delete as planned. A rerun after an interruption plans again from what the targets then hold.

import { FarmError, errorMessage } from '../core/errors.ts';
import { retentionSchema } from '../inventory/lifecycle-schema.ts';
import type { LoadedInventory } from '../inventory/schema.ts';
import { planPrune, type PlannedImage } from '../plan/prune.ts';
import { imageKey, listRemote, plainImage, removeAll, type Held, type Removal } from './lifecycle.ts';
import type { UploaderFactory } from './upload-stage.ts';

export interface PruneRun {
  policy: ReturnType<typeof retentionSchema.parse>;
  now: string;
  plan: PlannedImage[];
  /** Why the plan was refused (too many deletions): nothing was done. */
  refused?: string;
  /** Nothing was done because acting was not asked for. */
  dryRun: boolean;
  deprecated: string[];
  removed: Removal[];
  failures: string[];
}

export interface PruneOptions {
  apply: boolean;
  now: Date;
  maxDeletions?: number | undefined;
  factory: UploaderFactory;
  signal: AbortSignal;
}

export async function runPrune(loaded: LoadedInventory, opts: PruneOptions): Promise<PruneRun> {
  const policy = loaded.inventory.retention ?? retentionSchema.parse({});
  const list = await listRemote(loaded, {}, opts.factory, opts.signal);
  if (list.failures.length) {
    // A target that did not answer could hold the newest images of an arch: no plan without it.
    throw new FarmError('UPLOAD', `could not list every target, so nothing is planned:\n  ${list.failures.join('\n  ')}`);
  }
  const plan = planPrune(list.images.map(plainImage), policy, opts.now, opts.maxDeletions === undefined ? {} : { maxDeletions: opts.maxDeletions });
  const run: PruneRun = { policy, now: opts.now.toISOString(), plan: plan.items, ...(plan.refused ? { refused: plan.refused } : {}), dryRun: !opts.apply, deprecated: [], removed: [], failures: [] };
  if (plan.refused || !opts.apply) return run;
  const byKey = new Map(list.images.map((i) => [imageKey(i), i]));
  for (const p of plan.items.filter((x) => x.action === 'deprecate')) {
    const held = byKey.get(imageKey(p.image))!;
    try {
      await held.via.deprecateImage!(plainImage(held), opts.now, opts.signal);
      run.deprecated.push(`${p.image.target} ${p.image.location} ${p.image.imageId}`);
    } catch (e) {
      run.failures.push(`deprecate ${p.image.target} ${p.image.location} ${p.image.imageId}: ${errorMessage(e)}`);
    }
  }
  const doomed = plan.items.filter((x) => x.action === 'delete').map((p) => byKey.get(imageKey(p.image))!) as Held[];
  run.removed = await removeAll(doomed, opts.signal);
  for (const r of run.removed) if (r.error) run.failures.push(`delete ${r.image.target} ${r.image.location} ${r.image.imageId}: ${r.error}`);
  return run;
}
