// The one owner of a build's record (builds/<id>/): every change to state.json is one of the
// transitions below, applied in order (arches and uploads run concurrently, their changes never
// race), checked against the schema and written atomically; manifest.json and key.json are written
// here too. Reading goes through the same schema (./state-schema.ts), so a damaged or newer file is
// refused with an error before anything acts on it, and nothing is written over it.

import { join } from 'node:path';
import type { Arch } from '../core/arch.ts';
import { writeJsonAtomic } from '../core/atomic.ts';
import { FarmError } from '../core/errors.ts';
import type { ImageType } from '../core/image-types.ts';
import type { BuildPlan } from '../plan/plan.ts';
import type { PublishedImage } from '../../uploaders/uploader.ts';
import { KEY_FILE } from './history.ts';
import { buildManifest, type Manifest } from './manifest.ts';
import { STATE_VERSION, buildStateSchema, readBuildState } from './state-schema.ts';
import type { ArchState, ArchStep, ArtifactRecord, BuildState, HalfMadeRecord, PoolAllocationRecord, PublishedRecord, SmokeRecord, SourceRecord, UploadRecord, UploadStep } from './state.ts';
import { overallStatus } from './status.ts';

export const STATE_FILE = 'state.json';
export const MANIFEST_FILE = 'manifest.json';

/** Where each arch step may go next; fetched and failed are final. */
const ARCH_NEXT: Record<ArchStep, readonly ArchStep[]> = {
  planned: ['building', 'failed'],
  building: ['built', 'failed'],
  built: ['fetching', 'failed'],
  fetching: ['fetched', 'failed'],
  fetched: [],
  failed: [],
};

/** The upload steps each may come from (`undefined`: no record yet). A failed or interrupted
 *  upload is tried again; an uploaded one is never touched. */
const UPLOAD_FROM: Record<UploadStep, ReadonlyArray<UploadStep | undefined>> = {
  uploading: [undefined, 'uploading', 'failed'],
  uploaded: ['uploading'],
  failed: [undefined, 'uploading', 'failed'],
};

export type ArchExtra = Partial<Pick<ArchState, 'worker' | 'error' | 'runs' | 'artifacts' | 'durations'>>;

/** Names a target's upload record: its key (the target's name), its kind and the type it takes. */
export interface UploadTarget {
  target: string;
  kind: string;
  type: ImageType;
}

/** The first state of a build: its planned arches, and the unbuildable ones already failed. */
export function initialState(
  plan: BuildPlan,
  meta: { inventory: string; key?: string | undefined; trigger?: string | undefined; now?: Date; source?: SourceRecord | undefined },
): BuildState {
  const startedAt = (meta.now ?? new Date()).toISOString();
  const state: BuildState = {
    version: STATE_VERSION,
    buildId: plan.buildId,
    inventory: meta.inventory,
    startedAt,
    status: 'running',
    ...(meta.key ? { key: meta.key } : {}),
    ...(meta.trigger ? { trigger: meta.trigger } : {}),
    ...(meta.source ? { source: meta.source } : {}),
    arches: {},
  };
  for (const a of plan.arches) {
    state.arches[a.arch] = { arch: a.arch, step: 'planned', types: a.types, imageName: a.imageName, artifacts: [], uploads: {}, at: { planned: startedAt } };
  }
  for (const u of plan.unbuildable) {
    state.arches[u.arch] = { arch: u.arch, step: 'failed', types: [], imageName: '', error: u.reason, artifacts: [], uploads: {}, at: { failed: startedAt } };
  }
  return state;
}

export class BuildRecord {
  /** Every change waits for the one before: one writer per record, in order. */
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(
    /** The build's directory (builds/<id>). */
    readonly dir: string,
    private state: BuildState,
  ) {}

  /** The state file's path. */
  get path(): string {
    return join(this.dir, STATE_FILE);
  }

  get current(): Readonly<BuildState> {
    return this.state;
  }

  get buildId(): string {
    return this.state.buildId;
  }

  /** Starts the record of a new build in `dir` (claimed by the caller). */
  static async create(dir: string, initial: BuildState): Promise<BuildRecord> {
    const record = new BuildRecord(dir, structuredClone(initial));
    check(record.path, record.state);
    await writeJsonAtomic(record.path, record.state);
    return record;
  }

  /** The record of an existing build, checked; a damaged or newer file throws a BuildRecordError. */
  static async open(dir: string): Promise<BuildRecord> {
    return new BuildRecord(dir, await readBuildState(join(dir, STATE_FILE)));
  }

  /** Applies one change to a copy, checks it and writes it; the copy becomes the state only once
   *  it is on disk, so a refused change or a failed write leaves the last state everywhere. */
  private change(fn: (s: BuildState) => void, after?: (s: BuildState) => Promise<void>): Promise<void> {
    const next = this.chain.then(async () => {
      const copy = structuredClone(this.state);
      fn(copy);
      check(this.path, copy);
      await writeJsonAtomic(this.path, copy);
      this.state = copy;
      await after?.(copy);
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  private changeArch(arch: Arch, fn: (a: ArchState, s: BuildState) => void): Promise<void> {
    return this.change((s) => {
      const a = s.arches[arch];
      if (!a) throw new FarmError('STATE', `arch ${arch} is not part of build ${s.buildId}`);
      fn(a, s);
    });
  }

  // ---- arches -------------------------------------------------------------------------------

  /** Moves an arch to its next step (see ARCH_NEXT), stamping when. */
  setArchStep(arch: Arch, step: ArchStep, extra: ArchExtra = {}): Promise<void> {
    return this.changeArch(arch, (a, s) => {
      if (!ARCH_NEXT[a.step].includes(step)) {
        throw new FarmError('STATE', `build ${s.buildId}: ${arch} cannot go from ${a.step} to ${step}`);
      }
      Object.assign(a, extra);
      a.step = step;
      a.at[step] = new Date().toISOString();
    });
  }

  /** Building begins: one run record per planned builder run. */
  buildingStarted(arch: Arch, runs: ImageType[][]): Promise<void> {
    return this.setArchStep(arch, 'building', { runs: runs.map((types) => ({ types, at: {} })) });
  }

  /** A builder run was placed on a worker; the arch lists every worker its runs went to. */
  runStarted(arch: Arch, index: number, types: ImageType[], worker: string): Promise<void> {
    return this.changeArch(arch, (a) => {
      const runs = (a.runs ??= []);
      runs[index] = { types, worker, at: { started: new Date().toISOString() } };
      a.worker = [...new Set(runs.map((r) => r.worker).filter(Boolean))].join(', ');
    });
  }

  runBuilt(arch: Arch, index: number): Promise<void> {
    return this.changeArch(arch, (a) => {
      const run = a.runs?.[index];
      if (!run) throw new FarmError('STATE', `run ${index} of ${arch} was never started`);
      run.at.built = new Date().toISOString();
    });
  }

  /** The smoke check's verdicts for an arch's disks (before the fetch; a block failure then fails the arch). */
  smokeRecorded(arch: Arch, verdicts: SmokeRecord[]): Promise<void> {
    return this.changeArch(arch, (a) => {
      a.smoke = verdicts;
    });
  }

  /** Only once every file is fetched and verified is the arch recorded with its artifacts. */
  archFetched(arch: Arch, artifacts: ArtifactRecord[], durations: { build: number; fetch: number }): Promise<void> {
    return this.setArchStep(arch, 'fetched', { artifacts, durations });
  }

  /** An arch failed (or was cancelled): it records no artifact. */
  archFailed(arch: Arch, error: string): Promise<void> {
    return this.setArchStep(arch, 'failed', { error, artifacts: [] });
  }

  /** Whatever stopped the run: every arch not done is failed, never left running. */
  failUnfinished(error: string): Promise<void> {
    return this.change((s) => failOpenArches(s, error, new Date().toISOString()));
  }

  // ---- uploads ------------------------------------------------------------------------------

  /** Moves a target's upload to a step (see UPLOAD_FROM); the arch must be fetched. */
  uploadStep(arch: Arch, t: UploadTarget, step: UploadStep, extra: { images?: PublishedImage[]; error?: string } = {}): Promise<void> {
    return this.changeArch(arch, (a, s) => {
      if (a.step !== 'fetched') throw new FarmError('STATE', `build ${s.buildId}: ${arch} is ${a.step}, not fetched; nothing to upload`);
      const prior = a.uploads[t.target];
      if (!UPLOAD_FROM[step].includes(prior?.step)) {
        throw new FarmError('STATE', `build ${s.buildId}: the upload of ${arch} to ${t.target} cannot go from ${prior?.step ?? 'nothing'} to ${step}`);
      }
      const u: UploadRecord = (a.uploads[t.target] ??= { target: t.target, kind: t.kind, type: t.type, step, images: [], at: {} });
      u.step = step;
      u.at[step] = new Date().toISOString();
      if (extra.images) u.images = extra.images;
      if (extra.error !== undefined) u.error = extra.error;
      else delete u.error;
      // Done: whatever the journal holds is part of the published image now (one write, so no
      // moment exists where the image is recorded and its objects look half-made, or back).
      if (step === 'uploaded') delete u.halfMade;
    });
  }

  private changeUpload(arch: Arch, target: string, fn: (u: UploadRecord) => void): Promise<void> {
    return this.changeArch(arch, (a) => {
      const u = a.uploads[target];
      if (!u) throw new FarmError('STATE', `no upload record for ${target} of ${arch}`);
      fn(u);
    });
  }

  /** The journal (./upload-journal.ts): an object about to be created. */
  halfMadeBegun(arch: Arch, target: string, record: HalfMadeRecord): Promise<void> {
    return this.changeUpload(arch, target, (u) => {
      (u.halfMade ??= []).push(record);
    });
  }

  /** The journal: the object's id, once the create call answered. */
  halfMadeIdentified(arch: Arch, target: string, key: string, id: string): Promise<void> {
    return this.changeUpload(arch, target, (u) => {
      const r = u.halfMade?.find((h) => h.key === key);
      if (r) r.id = id;
    });
  }

  /** The journal: objects removed, gone or found complete. */
  halfMadeDropped(arch: Arch, target: string, keys: readonly string[]): Promise<void> {
    return this.changeUpload(arch, target, (u) => {
      const left = (u.halfMade ?? []).filter((h) => !keys.includes(h.key));
      if (left.length) u.halfMade = left;
      else delete u.halfMade;
    });
  }

  // ---- the build ----------------------------------------------------------------------------

  /** Records the end of a run (build or upload) and writes the manifest beside the state. */
  async finish(aborted: boolean): Promise<Manifest> {
    let manifest!: Manifest;
    await this.change(
      (s) => {
        s.finishedAt = new Date().toISOString();
        s.status = aborted ? 'cancelled' : overallStatus(s);
      },
      async (s) => {
        manifest = buildManifest(s);
        await writeJsonAtomic(join(this.dir, MANIFEST_FILE), manifest);
      },
    );
    return manifest;
  }

  /** Ends a build some failure left running (e.g. its process threw before recording its end).
   *  A build that recorded its end is left as it is. */
  closeIfRunning(aborted: boolean, error: string): Promise<void> {
    return this.change((s) => {
      if (s.status !== 'running') return;
      s.status = aborted ? 'cancelled' : 'failed';
      s.finishedAt = new Date().toISOString();
      failOpenArches(s, error, s.finishedAt);
    });
  }

  /** publish_image: one arch's image as pushed from its worker. */
  archPublished(repository: string, arch: Arch, pushed: { ref: string; digest: string }): Promise<void> {
    return this.change((s) => {
      const p = (s.published ??= { repository, arches: {} });
      p.arches[arch] = pushed;
    });
  }

  /** publish_image: the manifest list pushed, or why none was. */
  listPublished(repository: string, result: { list: NonNullable<PublishedRecord['list']> } | { error: string }): Promise<void> {
    return this.change((s) => {
      const p = (s.published ??= { repository, arches: {} });
      if ('list' in result) p.list = result.list;
      else p.listError = result.error;
    });
  }

  /** Records a pool VM (taken, then reachable, then given back): `fields` merge into the entry
   *  with the same pool and id, or start one. */
  poolAllocation(entry: Pick<PoolAllocationRecord, 'pool' | 'id'> & Partial<Omit<PoolAllocationRecord, 'at'>> & { at?: Partial<PoolAllocationRecord['at']> }): Promise<void> {
    return this.change((s) => {
      const list = (s.pools ??= []);
      const found = list.find((p) => p.pool === entry.pool && p.id === entry.id);
      if (found) Object.assign(found, { ...entry, at: { ...found.at, ...entry.at } });
      else list.push(entry as unknown as PoolAllocationRecord);
    });
  }

  /** Writes key.json (the key with its parts); a key that moved (digests resolved by the build)
   *  is recorded in the state and the manifest too. */
  async recordKey(key: { key: string; parts: Record<string, string> }): Promise<Manifest | undefined> {
    await writeJsonAtomic(join(this.dir, KEY_FILE), { key: key.key, parts: key.parts });
    if (this.state.key === key.key) return undefined;
    let manifest!: Manifest;
    await this.change(
      (s) => {
        s.key = key.key;
      },
      async (s) => {
        manifest = buildManifest(s);
        await writeJsonAtomic(join(this.dir, MANIFEST_FILE), manifest);
      },
    );
    return manifest;
  }
}

function failOpenArches(s: BuildState, error: string, at: string): void {
  for (const a of Object.values(s.arches)) {
    if (a && a.step !== 'fetched' && a.step !== 'failed') {
      a.step = 'failed';
      a.error = error;
      a.at.failed = at;
    }
  }
}

/** A state this farm could not read back is never written (a bug, not the user's doing). */
function check(path: string, state: BuildState): void {
  const r = buildStateSchema.safeParse(state);
  if (!r.success) {
    throw new FarmError('STATE', `refusing to write ${path}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
}
