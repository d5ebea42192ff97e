// One build job from an inventory file: what `farm build` runs, and what `farm serve` runs for
// each trigger. Loads and validates the inventory, selects arches and targets, connects over SSH,
// builds, fetches and uploads.

import { parseArchList, type Arch } from '../arch.ts';
import { FarmError } from '../errors.ts';
import { loadInventory } from '../inventory/load.ts';
import type { LoadedInventory } from '../inventory/schema.ts';
import { inventoryArches } from '../plan/plan.ts';
import type { Reporter } from '../ui/reporter.ts';
import { connectWorker } from '../../workers/ssh/session.ts';
import { createUploader } from '../../uploaders/index.ts';
import { runBuild, type BuildOutcome } from './run-build.ts';
import { TargetUploads, checkSelection, type TargetSelection, type UploaderFactory } from './upload-stage.ts';

export interface JobOptions {
  inventoryPath: string;
  /** "all" or a comma-separated list. */
  arches: string;
  signal: AbortSignal;
  reporter: Reporter;
  targets?: TargetSelection;
  /** Skip every upload (build and fetch only). */
  noUpload?: boolean;
  trigger?: string;
  key?: string;
  env?: NodeJS.ProcessEnv;
  uploaderFactory?: UploaderFactory;
}

export function selectArches(spec: string, loaded: LoadedInventory): Arch[] {
  if (spec.trim() === 'all') return inventoryArches(loaded);
  try {
    return parseArchList(spec);
  } catch (err) {
    throw new FarmError('USAGE', (err as Error).message);
  }
}

export function uploadStageFor(loaded: LoadedInventory, opts: Pick<JobOptions, 'targets' | 'env' | 'uploaderFactory'>): TargetUploads {
  const selection = opts.targets ?? {};
  checkSelection(loaded, selection);
  const factory = opts.uploaderFactory ?? ((target, name) => createUploader(target, name, opts.env));
  return new TargetUploads(loaded, selection, factory);
}

export async function runBuildJob(opts: JobOptions): Promise<BuildOutcome> {
  const loaded = await loadInventory(opts.inventoryPath);
  const arches = selectArches(opts.arches, loaded);
  const s = loaded.inventory.settings;
  const hasTargets = Object.values(loaded.inventory.arches).some((a) => (a?.targets.length ?? 0) > 0);
  return runBuild({
    loaded,
    arches,
    signal: opts.signal,
    reporter: opts.reporter,
    uploads: hasTargets && !opts.noUpload ? uploadStageFor(loaded, opts) : undefined,
    ...(opts.trigger ? { trigger: opts.trigger } : {}),
    ...(opts.key ? { key: opts.key } : {}),
    connect: (worker, o) =>
      connectWorker(worker, { signal: o.signal, connectTimeoutMs: s.connect_timeout_s * 1000, keepaliveIntervalMs: s.keepalive_s * 1000 }),
  });
}
