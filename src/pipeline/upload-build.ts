// `farm upload BUILD_ID`: the uploads stage for a build already fetched. Steps already uploaded are
// skipped (the state file says so) and images already published are found, not duplicated.

import { join, resolve } from 'node:path';
import type { Arch } from '../core/arch.ts';
import { FarmError } from '../core/errors.ts';
import type { LoadedInventory } from '../inventory/schema.ts';
import { isBuildId } from '../naming.ts';
import { planBuild } from '../plan/plan.ts';
import { BuildRecord } from '../records/build-record.ts';
import type { Reporter } from '../ui/reporter.ts';
import type { BuildOutcome } from './run-build.ts';
import type { TargetUploads } from './upload-stage.ts';

export async function uploadBuild(
  loaded: LoadedInventory,
  buildId: string,
  stage: TargetUploads,
  signal: AbortSignal,
  reporter: Reporter,
): Promise<BuildOutcome> {
  if (!isBuildId(buildId)) {
    throw new FarmError('USAGE', `'${buildId}' is not a build id`, { hint: 'build ids look like 20261121t101500z; see the builds directory' });
  }
  const dir = join(resolve(loaded.dir, loaded.inventory.settings.builds_dir), buildId);
  // A damaged or newer state is refused here, before any target is asked or anything written.
  const store = await BuildRecord.open(dir);
  const fetched = Object.values(store.current.arches).filter((a) => a?.step === 'fetched').map((a) => a!.arch as Arch);
  if (fetched.length === 0) {
    throw new FarmError('STATE', `build ${buildId} has no fetched images to upload`, { hint: 'run farm build first' });
  }
  // The plan gives each arch its targets from the current inventory, under the build's names.
  const plan = planBuild(loaded, fetched, buildId);
  await stage.preflight(plan, signal);
  await Promise.all(plan.arches.map((a) => stage.uploadArch(a, store, signal, reporter.scoped(a.arch))));
  const manifest = await store.finish(signal.aborted);
  return { buildId, dir, state: store.current, manifest };
}
