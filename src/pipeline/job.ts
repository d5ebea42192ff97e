// One build job from an inventory file: what `farm build` runs, and what `farm serve` runs for
// each trigger. Loads and validates the inventory, selects arches and targets, connects over SSH,
// builds, fetches and uploads.

import { parseArchList, type Arch } from '../core/arch.ts';
import { FarmError, errorMessage } from '../core/errors.ts';
import { loadInventory } from '../inventory/load.ts';
import type { LoadedInventory } from '../inventory/schema.ts';
import { inventoryArches } from '../plan/plan.ts';
import { BuildRecord } from '../records/build-record.ts';
import { refreshUnresolved, type BuildKey } from '../triggers/key.ts';
import type { Reporter } from '../ui/reporter.ts';
import { connectWorker } from '../../workers/ssh/session.ts';
import { workerEndpoint } from '../inventory/worker-endpoint.ts';
import { createUploader } from '../targets.ts';
import { runBuild, type BuildOutcome } from './run-build.ts';
import { releaseBuild } from './release.ts';
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
  /** The build key with its parts (see src/triggers/key.ts); recorded in state.json and key.json. */
  buildKey?: BuildKey;
  /** The inventory already loaded (e.g. to compute the key): the build uses this very snapshot. */
  loaded?: LoadedInventory;
  env?: NodeJS.ProcessEnv;
  uploaderFactory?: UploaderFactory;
  /** Told the build's id as soon as its record exists (the service links its run to it). */
  onBuildId?: (buildId: string) => void;
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
  const loaded = opts.loaded ?? (await loadInventory(opts.inventoryPath));
  const arches = selectArches(opts.arches, loaded);
  const s = loaded.inventory.settings;
  const hasTargets = Object.values(loaded.inventory.arches).some((a) => (a?.targets.length ?? 0) > 0);
  const key = opts.buildKey?.key ?? opts.key;
  const outcome = await runBuild({
    loaded,
    arches,
    signal: opts.signal,
    reporter: opts.reporter,
    uploads: hasTargets && !opts.noUpload ? uploadStageFor(loaded, opts) : undefined,
    ...(opts.trigger ? { trigger: opts.trigger } : {}),
    ...(key ? { key } : {}),
    onBuildId: opts.onBuildId,
    image: opts.buildKey?.image,
    env: opts.env,
    connect: (worker, o) =>
      connectWorker(workerEndpoint(worker), {
        signal: o.signal,
        connectTimeoutMs: s.connect_timeout_s * 1000,
        keepaliveIntervalMs: s.keepalive_s * 1000,
        bulkTransfer: s.bulk_transfer,
      }),
  });
  const done = opts.buildKey ? await recordKey(outcome, loaded, opts.buildKey, arches, opts) : outcome;
  if (loaded.inventory.release?.auto && hasTargets && !opts.noUpload) await autoRelease(loaded, done, opts);
  return done;
}

/** `release: { auto: true }`: a build that succeeded everywhere is released at once. */
async function autoRelease(loaded: LoadedInventory, outcome: BuildOutcome, opts: JobOptions): Promise<void> {
  const log = opts.reporter.scoped('farm');
  if (outcome.state.status !== 'succeeded' || opts.signal.aborted) {
    log.info(`release: auto: build ${outcome.state.buildId} did not succeed everywhere; its images stay candidates`);
    return;
  }
  // Auto release requires the smoke checks to pass: an image published under `policy: warn`
  // after a failed boot waits for a person's `farm release`.
  const failedBoots = Object.values(outcome.state.arches).flatMap((a) => (a.smoke ?? []).filter((s) => s.status === 'failed').map((s) => `${a.arch} (${s.types.join(', ')})`));
  if (failedBoots.length) {
    log.info(`release: auto: the smoke check failed for ${failedBoots.join(', ')}; the images of ${outcome.state.buildId} stay candidates`);
    return;
  }
  const env = opts.env ?? process.env;
  try {
    const r = await releaseBuild(loaded, outcome.state.buildId, {
      targets: opts.targets ?? {},
      factory: opts.uploaderFactory ?? ((target, name) => createUploader(target, name, env)),
      env,
      signal: opts.signal,
      log: (line) => log.warn(line),
    });
    log.info(`release: auto: released ${r.released.length} image(s) of ${outcome.state.buildId}`);
    for (const f of r.failures) log.warn(`release: ${f}`);
    if (r.hook?.error) log.warn(`release: ${r.hook.error}`);
  } catch (err) {
    log.warn(`release: auto: ${errorMessage(err)}`);
  }
}

/**
 * Writes key.json beside the state. A successful build has now pulled the images whose digests
 * were unresolved before it: they are resolved and the key in the records updated, so the next
 * --if-changed compares against what this build used instead of rebuilding once more.
 */
async function recordKey(outcome: BuildOutcome, loaded: LoadedInventory, key: BuildKey, arches: Arch[], opts: JobOptions): Promise<BuildOutcome> {
  let final = key;
  if (outcome.state.status === 'succeeded' && key.unresolved.length && !opts.signal.aborted) {
    final = await refreshUnresolved(loaded, key, { signal: opts.signal, arches }).catch((err: unknown) => {
      opts.reporter.scoped('farm').warn(`build key: could not resolve image digests after the build (${errorMessage(err)})`);
      return key;
    });
  }
  const record = await BuildRecord.open(outcome.dir);
  const manifest = await record.recordKey({ key: final.key, parts: final.parts });
  return manifest ? { ...outcome, state: record.current, manifest } : outcome;
}
