// The state file (builds/<id>/state.json) records each arch's progress and each (arch, target)
// upload, written atomically after every step, so a later run can resume what is pending
// (`farm upload BUILD_ID`) and no partial image is ever recorded as done.

import { readFile } from 'node:fs/promises';
import type { Arch } from '../core/arch.ts';
import type { ImageType } from '../inventory/schema.ts';
import { FarmError } from '../core/errors.ts';
import { JsonRecord, writeJsonAtomic } from '../core/atomic.ts';
import type { ArtifactFile } from '../core/artifact.ts';
import type { HalfMade, PublishedImage } from '../../uploaders/uploader.ts';

export type ArchStep = 'planned' | 'building' | 'built' | 'fetching' | 'fetched' | 'failed';
export type UploadStep = 'uploading' | 'uploaded' | 'failed';

export interface ArtifactRecord {
  type: ImageType;
  imageName: string;
  disk: ArtifactFile;
  extra: ArtifactFile[];
  /** The worker that built it. */
  worker?: string;
}

/** One builder run of an arch: its types, the worker it ran on, and when it started and ended. */
export interface RunRecord {
  types: ImageType[];
  worker?: string;
  at: { started?: string; built?: string };
}

export interface UploadRecord {
  target: string;
  kind: string;
  /** The artifact type uploaded (a target takes one of the arch's artifacts). */
  type: ImageType;
  step: UploadStep;
  images: PublishedImage[];
  error?: string;
  at: Record<string, string>;
  /** Objects an upload began to create and has not finished or removed (see upload-journal.ts):
   *  a rerun removes them before it looks for or uploads the image. */
  halfMade?: HalfMadeRecord[];
}

/** A journal record: the object, and when and under which key it was recorded. */
export interface HalfMadeRecord extends HalfMade {
  key: string;
  at: string;
}

export interface ArchState {
  arch: Arch;
  step: ArchStep;
  types: ImageType[];
  imageName: string;
  /** The workers its runs were placed on. */
  worker?: string;
  error?: string;
  /** Its builder runs, in plan order (set once it starts building). */
  runs?: RunRecord[];
  artifacts: ArtifactRecord[];
  uploads: Record<string, UploadRecord>;
  /** UTC ISO time each step was reached. */
  at: Partial<Record<ArchStep, string>>;
  /** Seconds spent building (podman build + bib) and fetching. */
  durations?: { build?: number; fetch?: number };
}

export type BuildStatus = 'running' | 'succeeded' | 'failed' | 'partial' | 'cancelled';

export interface BuildState {
  version: 1;
  buildId: string;
  inventory: string;
  startedAt: string;
  finishedAt?: string;
  status: BuildStatus;
  /** Digest of everything that decides the images (set by --if-changed logic). */
  key?: string;
  trigger?: string;
  arches: Partial<Record<Arch, ArchState>>;
}

export class StateStore extends JsonRecord<BuildState> {
  private constructor(path: string, state: BuildState) {
    super(path, state);
  }

  static async create(path: string, initial: BuildState): Promise<StateStore> {
    const store = new StateStore(path, initial);
    await writeJsonAtomic(path, initial);
    return store;
  }

  static async open(path: string): Promise<StateStore> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new FarmError('STATE', `cannot read build state ${path}: ${(err as Error).message}`, {
        hint: 'check the build id: `farm images` or `ls builds/` lists builds',
      });
    }
    let state: BuildState;
    try {
      state = JSON.parse(text) as BuildState;
    } catch {
      throw new FarmError('STATE', `build state ${path} is not valid JSON`, { hint: 'the file was edited or damaged' });
    }
    if (state.version !== 1) throw new FarmError('STATE', `build state ${path} has unknown version ${state.version}`);
    return new StateStore(path, state);
  }

  updateArch(arch: Arch, change: (a: ArchState) => void): Promise<void> {
    return this.update((s) => {
      const a = s.arches[arch];
      if (!a) throw new FarmError('STATE', `arch ${arch} is not part of build ${s.buildId}`);
      change(a);
    });
  }

  setArchStep(arch: Arch, step: ArchStep, extra: Partial<ArchState> = {}): Promise<void> {
    return this.updateArch(arch, (a) => {
      Object.assign(a, extra);
      a.step = step;
      a.at[step] = new Date().toISOString();
    });
  }
}
