// The uploads stage behind UploadStage: every selected target of an arch gets the artifact of the
// type it takes, as soon as that arch is fetched (other arches may still be building). Each
// (arch, target) step is recorded; an image already published under the name is found, not
// uploaded again; a failure is that target's alone.

import PQueue from 'p-queue';
import type { Arch } from '../core/arch.ts';
import { FarmError, errorMessage, isAbortError } from '../core/errors.ts';
import type { LoadedInventory, Target } from '../inventory/schema.ts';
import { resolveTargetName } from '../inventory/target-name.ts';
import { renderName } from '../naming.ts';
import { typeForTarget } from '../plan/image-types.ts';
import type { ArchPlan, BuildPlan } from '../plan/plan.ts';
import type { BuildRecord } from '../records/build-record.ts';
import type { ArtifactRecord, BuildState, HalfMadeRecord } from '../records/state.ts';
import { StateJournal } from '../records/upload-journal.ts';
import type { ScopedReporter } from '../ui/reporter.ts';
import type { Artifact } from '../core/artifact.ts';
import type { HalfMade, PublishedImage, Uploader, UploadProgress } from '../../uploaders/uploader.ts';
import { throttle } from '../../uploaders/toolkit/progress.ts';
import type { UploadStage } from './uploads.ts';

/** The stable id of an inventory's images on the targets (farm:inventory): its naming's name. */
export function inventoryId(loaded: LoadedInventory): string {
  return loaded.inventory.naming.name;
}

export type UploaderFactory = (target: Target, name: string) => Uploader;

export interface TargetSelection {
  only?: string[] | undefined;
  skip?: string[] | undefined;
}

/** Uploads that run at once across all arches: the coordinator's uplink is the shared resource. */
const UPLOAD_CONCURRENCY = 4;

export function selectTargets(targets: readonly Target[], sel: TargetSelection): Array<{ target: Target; name: string }> {
  return targets
    .map((target) => ({ target, name: resolveTargetName(target) }))
    .filter(({ target, name }) => {
      const keys = [name, target.kind];
      if (sel.only?.length && !sel.only.some((o) => keys.includes(o))) return false;
      if (sel.skip?.length && sel.skip.some((o) => keys.includes(o))) return false;
      return true;
    });
}

/** Names given to --only/--skip must exist somewhere, or a typo would silently upload nothing. */
export function checkSelection(loaded: LoadedInventory, sel: TargetSelection): void {
  const known = new Set<string>();
  for (const cfg of Object.values(loaded.inventory.arches)) {
    for (const t of cfg?.targets ?? []) {
      known.add(resolveTargetName(t));
      known.add(t.kind);
    }
  }
  const unknown = [...(sel.only ?? []), ...(sel.skip ?? [])].filter((n) => !known.has(n));
  if (unknown.length) {
    throw new FarmError('USAGE', `unknown target ${unknown.map((u) => `'${u}'`).join(', ')} in --only/--skip`, {
      hint: known.size ? `targets in ${loaded.file}: ${[...known].join(', ')}` : `${loaded.file} has no targets`,
    });
  }
}

export function toArtifact(state: BuildState, arch: Arch, record: ArtifactRecord): Artifact {
  const a = state.arches[arch]!;
  return {
    buildId: state.buildId,
    arch,
    type: record.type,
    imageName: record.imageName,
    disk: record.disk,
    extra: record.extra,
    worker: a.worker ?? '',
    builtAt: a.at.fetched ?? state.startedAt,
  };
}

export class TargetUploads implements UploadStage {
  // Keyed by the target itself: two arches may each have a target of the same name (aws-us-east-1)
  // with different settings (ebs-direct for one, s3-import for the other).
  private readonly uploaders = new Map<Target, Uploader>();
  private readonly queue = new PQueue({ concurrency: UPLOAD_CONCURRENCY });

  constructor(
    private readonly loaded: LoadedInventory,
    private readonly selection: TargetSelection,
    private readonly factory: UploaderFactory,
  ) {}

  private uploader(target: Target, name: string): Uploader {
    let u = this.uploaders.get(target);
    if (!u) {
      u = this.factory(target, name);
      this.uploaders.set(target, u);
    }
    return u;
  }

  async preflight(plan: BuildPlan, signal: AbortSignal): Promise<void> {
    const seen = new Map<Target, string>();
    const failures: string[] = [];
    for (const a of plan.arches) {
      for (const { target, name } of selectTargets(a.targets, this.selection)) {
        seen.set(target, name);
        const type = typeForTarget(target);
        if (!a.types.includes(type)) {
          failures.push(`${name}: takes ${type} images, but ${a.arch} builds only ${a.types.join(', ')}: add ${type} to arches.${a.arch}.types`);
        }
      }
    }
    await Promise.all(
      [...seen].map(async ([target, name]) => {
        try {
          await this.uploader(target, name).preflight(signal);
        } catch (err) {
          failures.push(`${name}: ${errorMessage(err)}`);
        }
      }),
    );
    if (failures.length) {
      throw new FarmError('UPLOAD', `preflight failed for ${failures.length} target(s), nothing was built:\n  ${failures.join('\n  ')}`, {
        hint: 'fix the credentials or settings named above, or leave the target out with --skip NAME',
      });
    }
  }

  async uploadArch(plan: ArchPlan, store: BuildRecord, signal: AbortSignal, log: ScopedReporter): Promise<void> {
    const selected = selectTargets(plan.targets, this.selection);
    await Promise.all(selected.map(({ target, name }) => this.queue.add(() => this.uploadOne(plan.arch, target, name, store, signal, log))));
  }

  private async uploadOne(arch: Arch, target: Target, name: string, store: BuildRecord, signal: AbortSignal, log: ScopedReporter): Promise<void> {
    const state = store.current;
    const archState = state.arches[arch];
    const type = typeForTarget(target);
    const prior = archState?.uploads[name];
    if (prior?.step === 'uploaded') {
      log.info(`${name}: already uploaded in this build (${prior.images.map((i) => i.imageId).join(', ')})`);
      return;
    }
    const record = archState?.artifacts.find((a) => a.type === type);
    const setUpload = (step: 'uploading' | 'uploaded' | 'failed', extra: { images?: PublishedImage[]; error?: string } = {}) =>
      store.uploadStep(arch, { target: name, kind: target.kind, type }, step, extra);
    if (!record) {
      const error = `no ${type} artifact for ${arch}: add ${type} to arches.${arch}.types`;
      log.error(`${name}: ${error}`);
      await setUpload('failed', { error });
      return;
    }
    const artifact = toArtifact(state, arch, record);
    const imageName = target.naming
      ? renderName(target.naming, { name: this.loaded.inventory.naming.name, arch, buildId: state.buildId })
      : record.imageName;
    const uploader = this.uploader(target, name);
    try {
      await setUpload('uploading');
      const journal = new StateJournal(store, arch, name);
      const leftovers = store.current.arches[arch]?.uploads[name]?.halfMade ?? [];
      if (leftovers.length) {
        const left = await removeLeftovers(uploader, name, leftovers, journal, signal, log);
        if (left) {
          log.error(`${name}: ${left}`);
          await setUpload('failed', { error: left });
          return;
        }
      }
      const existing = await uploader.find(imageName, artifact, signal);
      if (existing.length) {
        log.info(`${name}: ${imageName} already exists (${existing.map((e) => `${e.location} ${e.imageId}`).join(', ')}); not uploading again`);
        await setUpload('uploaded', { images: existing });
        return;
      }
      log.info(`${name}: uploading ${artifact.disk.name} as ${imageName}`);
      const t0 = Date.now();
      const images = await uploader.upload(artifact, imageName, {
        signal,
        // The log contract: uploaders never name themselves; this stage prefixes every line.
        log: (m) => log.info(`${name}: ${m}`),
        onProgress: throttledProgress(name, log),
        tags: { 'farm-build-id': state.buildId, 'farm-image-name': imageName, 'farm-arch': arch, 'farm-attempt': journal.attempt },
        journal,
        // Every image starts as a candidate: `farm release` shares and promotes it.
        identity: { buildId: state.buildId, arch, name: imageName, channel: 'candidate', inventory: inventoryId(this.loaded) },
      });
      await setUpload('uploaded', { images });
      log.info(`${name}: published ${images.map((i) => `${i.location} ${i.imageId}`).join(', ')} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } catch (err) {
      const error = signal.aborted || isAbortError(err) ? 'cancelled' : errorMessage(err);
      log.error(`${name}: upload failed: ${error}`);
      await setUpload('failed', { error });
    }
  }
}

export function describeHalfMade(o: HalfMade): string {
  return `${o.kind} ${o.name}${o.id ? ` (${o.id})` : ''} in ${o.location}`;
}

/**
 * Removes what an earlier run of this upload began and never finished (its journal records),
 * before anything is looked up or uploaded. Records of objects removed, gone or complete are
 * dropped; a failure keeps its record, so a later run tries again. Returns why the upload cannot
 * go on, if anything is left.
 */
async function removeLeftovers(
  uploader: Uploader,
  name: string,
  leftovers: readonly HalfMadeRecord[],
  journal: StateJournal,
  signal: AbortSignal,
  log: ScopedReporter,
): Promise<string | undefined> {
  log.info(`${name}: an earlier run did not finish; removing what it left: ${leftovers.map(describeHalfMade).join(', ')}`);
  if (!uploader.removeHalfMade) {
    return `cannot remove what an earlier run left (${leftovers.map(describeHalfMade).join(', ')}): this target kind does not know how; remove them by hand`;
  }
  let results;
  try {
    results = await uploader.removeHalfMade(leftovers, signal);
  } catch (err) {
    return `removing what an earlier run left failed: ${errorMessage(err)}; the next \`farm upload\` tries again`;
  }
  const settled: string[] = [];
  const failures: string[] = [];
  for (const r of results) {
    const rec = r.object as HalfMadeRecord;
    if (r.outcome) {
      settled.push(rec.key);
      if (r.outcome === 'removed') log.info(`${name}: removed ${describeHalfMade(rec)}`);
      if (r.outcome === 'complete') log.info(`${name}: ${describeHalfMade(rec)} is complete; kept`);
    } else failures.push(`${describeHalfMade(rec)}: ${r.error ?? 'not removed'}`);
  }
  await journal.drop(settled);
  const unanswered = leftovers.filter((l) => !results.some((r) => r.object === l));
  for (const u of unanswered) failures.push(`${describeHalfMade(u)}: not looked at`);
  if (failures.length === 0) return undefined;
  return `could not remove what an earlier run left (${failures.join('; ')}); the record stays and the next \`farm upload\` tries again`;
}

/** A progress line every 5 s and at the end, through the uploaders' one throttle (phases alone
 *  do not earn a line here: the terminal is not a progress bar). */
function throttledProgress(name: string, log: ScopedReporter): (p: UploadProgress) => void {
  const start = Date.now();
  return throttle(
    (p: UploadProgress) => {
      const secs = Math.max((Date.now() - start) / 1000, 0.001);
      const pct = p.total ? Math.floor((p.done / p.total) * 100) : 0;
      log.info(`${name}: ${p.phase} ${pct}% (${(p.sent / 2 ** 20).toFixed(0)} MiB sent, ${(p.sent / 2 ** 20 / secs).toFixed(0)} MiB/s)`);
    },
    { intervalMs: 5000, key: () => '', isFinal: (p) => p.done >= p.total },
  );
}
