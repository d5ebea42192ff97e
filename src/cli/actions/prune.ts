// `farm prune`: plans from the targets' own listings (src/plan/prune.ts), prints the plan, and
// with --yes deprecates and deletes as planned. A rerun after an interruption plans again from
// what the targets then hold, so it finishes what was cut short.

import type { CommandContext } from 'citty';
import { FarmError, errorMessage } from '../../core/errors.ts';
import { retentionSchema } from '../../inventory/lifecycle-schema.ts';
import { imageKey, listRemote, plainImage, removeAll, type Held } from '../../pipeline/lifecycle.ts';
import { planPrune, type PlannedImage } from '../../plan/prune.ts';
import { createUploader } from '../../targets.ts';
import { renderTable } from '../../ui/table.ts';
import type { pruneArgs } from '../commands/prune.ts';
import { err, io, out } from '../io.ts';
import { loadFromArgs } from './args.ts';

export function renderPlan(items: readonly PlannedImage[]): string {
  return renderTable(
    ['TARGET', 'WHERE', 'ARCH', 'IMAGE', 'BUILD', 'ACTION', 'REASON'],
    items.map((p) => [p.image.target, p.image.location, p.image.arch, p.image.imageId, p.image.buildId, p.action, p.reason]),
  );
}

export async function prune({ args }: CommandContext<typeof pruneArgs>): Promise<void> {
  const { env, signal } = io();
  let max: number | undefined;
  if (args.max !== undefined) {
    max = Number(args.max);
    if (!Number.isInteger(max) || max < 0) throw new FarmError('USAGE', `--max takes a whole number, not '${args.max}'`);
  }
  const now = args.at === undefined ? new Date() : new Date(args.at);
  if (Number.isNaN(now.getTime())) throw new FarmError('USAGE', `--at takes an ISO 8601 time such as 2027-01-31T00:00:00Z, not '${args.at}'`);
  const loaded = await loadFromArgs(args);
  const policy = loaded.inventory.retention ?? retentionSchema.parse({});
  const list = await listRemote(loaded, {}, (target, name) => createUploader(target, name, env), signal);
  if (list.failures.length) {
    // A target that did not answer could hold the newest images of an arch: no plan without it.
    throw new FarmError('UPLOAD', `could not list every target, so nothing is planned:\n  ${list.failures.join('\n  ')}`);
  }
  const plan = planPrune(list.images.map(plainImage), policy, now, max === undefined ? {} : { maxDeletions: max });
  const byKey = new Map(list.images.map((i) => [imageKey(i), i]));
  const report = { policy, now: now.toISOString(), plan: plan.items, ...(plan.refused ? { refused: plan.refused } : {}) };
  if (plan.refused) {
    if (args.json) out(JSON.stringify(report, null, 2));
    else out(renderPlan(plan.items));
    throw new FarmError('USAGE', `${plan.refused}; nothing was done`, { hint: `run again with --max ${plan.items.filter((p) => p.action === 'delete').length} to allow it` });
  }
  if (!args.yes) {
    if (args.json) return out(JSON.stringify({ ...report, dryRun: true }, null, 2));
    out(renderPlan(plan.items));
    err('dry run: nothing was changed; run again with --yes to act on this plan');
    return;
  }
  const failures: string[] = [];
  const deprecated: string[] = [];
  for (const p of plan.items.filter((x) => x.action === 'deprecate')) {
    const held = byKey.get(imageKey(p.image))!;
    try {
      await held.via.deprecateImage!(plainImage(held), now, signal);
      deprecated.push(`${p.image.target} ${p.image.location} ${p.image.imageId}`);
    } catch (e) {
      failures.push(`deprecate ${p.image.target} ${p.image.location} ${p.image.imageId}: ${errorMessage(e)}`);
    }
  }
  const doomed = plan.items.filter((x) => x.action === 'delete').map((p) => byKey.get(imageKey(p.image))!) as Held[];
  const removed = await removeAll(doomed, signal);
  for (const r of removed) if (r.error) failures.push(`delete ${r.image.target} ${r.image.location} ${r.image.imageId}: ${r.error}`);
  for (const f of failures) err(f);
  if (failures.length) io().exitCode = 1;
  if (args.json) return out(JSON.stringify({ ...report, deprecated, removed }, null, 2));
  out(renderPlan(plan.items));
  out(`deprecated ${deprecated.length}, deleted ${removed.filter((r) => !r.error).length}${failures.length ? `, ${failures.length} failed` : ''}`);
}
