// `farm prune`: plans from the targets' own listings (src/pipeline/prune-run.ts), prints the
// plan, and with --yes deprecates and deletes as planned.

import type { CommandContext } from 'citty';
import { FarmError } from '../../core/errors.ts';
import { runPrune } from '../../pipeline/prune-run.ts';
import type { PlannedImage } from '../../plan/prune.ts';
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
  const run = await runPrune(loaded, { apply: Boolean(args.yes), now, maxDeletions: max, factory: (target, name) => createUploader(target, name, env), signal });
  const report = { policy: run.policy, now: run.now, plan: run.plan, ...(run.refused ? { refused: run.refused } : {}) };
  if (run.refused) {
    if (args.json) out(JSON.stringify(report, null, 2));
    else out(renderPlan(run.plan));
    throw new FarmError('USAGE', `${run.refused}; nothing was done`, { hint: `run again with --max ${run.plan.filter((p) => p.action === 'delete').length} to allow it` });
  }
  if (run.dryRun) {
    if (args.json) return out(JSON.stringify({ ...report, dryRun: true }, null, 2));
    out(renderPlan(run.plan));
    err('dry run: nothing was changed; run again with --yes to act on this plan');
    return;
  }
  for (const f of run.failures) err(f);
  if (run.failures.length) io().exitCode = 1;
  if (args.json) return out(JSON.stringify({ ...report, deprecated: run.deprecated, removed: run.removed }, null, 2));
  out(renderPlan(run.plan));
  out(`deprecated ${run.deprecated.length}, deleted ${run.removed.filter((r) => !r.error).length}${run.failures.length ? `, ${run.failures.length} failed` : ''}`);
}
