// Build history, read from the builds directory: every builds/<id>/state.json, newest first.
// Read-only and forgiving: a directory without a readable state (a build being claimed, a damaged
// file, something else entirely) is passed over, never an error, so one bad record cannot hide the
// others from `farm images`, `--if-changed` or the status page. Every state goes through the
// record's schema (./state-schema.ts); callers may hear about the damaged ones (onSkipped).

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { buildIdDate, isBuildId } from '../naming.ts';
import { BuildRecordError, readBuildState } from './state-schema.ts';
import type { ArchState, BuildState } from './state.ts';

/** One image an upload published, with the build and arch it came from. */
export interface PublishedRecord {
  buildId: string;
  arch: string;
  /** The artifact type uploaded (ami, qcow2, ...). */
  type: string;
  target: string;
  kind: string;
  location: string;
  imageName: string;
  imageId: string;
  artifactId: string;
  existing: boolean;
  /** When the upload finished (UTC ISO). */
  at?: string;
  /** An image source: the reference and the arch's manifest digest the image was made from. */
  sourceImage?: string;
  sourceDigest?: string;
}

export interface BuildSummary {
  buildId: string;
  dir: string;
  status: BuildState['status'];
  startedAt: string;
  finishedAt?: string;
  key?: string;
  trigger?: string;
  arches: BuildState['arches'];
  images: PublishedRecord[];
  artifacts: Array<{ arch: string; type: string; imageName: string; path: string; size: number; sha256: string }>;
  /** The parts of the build key (from key.json beside the state), where recorded; lastSuccessful only. */
  keyParts?: Record<string, string>;
}

/** builds/<id>/key.json: the build key with its parts, so a later run can say what changed. */
export const KEY_FILE = 'key.json';

async function readKeyParts(dir: string, key: string | undefined): Promise<Record<string, string> | undefined> {
  if (!key) return undefined;
  try {
    const rec = JSON.parse(await readFile(join(dir, KEY_FILE), 'utf8')) as { key?: unknown; parts?: unknown };
    if (rec.key !== key || typeof rec.parts !== 'object' || rec.parts === null) return undefined;
    return rec.parts as Record<string, string>;
  } catch {
    return undefined;
  }
}

/** Newest first: by the time in the id, then by the -N suffix of a second build in one second. */
function compareIdsDesc(a: string, b: string): number {
  const t = buildIdDate(b).getTime() - buildIdDate(a).getTime();
  if (t !== 0) return t;
  const seq = (id: string) => Number(/-(\d+)$/.exec(id)?.[1] ?? 1);
  return seq(b) - seq(a);
}

/** Called for each record passed over because it is damaged or a newer farm's (not for a
 *  directory with no state yet: a build being claimed). */
export type OnSkipped = (err: BuildRecordError) => void;

async function readState(dir: string, onSkipped: OnSkipped | undefined): Promise<BuildState | undefined> {
  try {
    return await readBuildState(join(dir, 'state.json'));
  } catch (err) {
    if (!(err instanceof BuildRecordError)) throw err;
    if (err.problem !== 'missing' && !(err.problem === 'unreadable' && /EISDIR|ENOTDIR/.test(err.message))) onSkipped?.(err);
    return undefined;
  }
}

export function publishedOf(state: BuildState): PublishedRecord[] {
  const out: PublishedRecord[] = [];
  for (const a of Object.values(state.arches) as Array<ArchState | undefined>) {
    for (const up of Object.values(a?.uploads ?? {})) {
      if (up.step !== 'uploaded') continue;
      for (const img of up.images ?? []) {
        out.push({
          buildId: state.buildId,
          arch: a!.arch,
          type: up.type,
          target: img.target,
          kind: img.kind,
          location: img.location,
          imageName: img.imageName,
          imageId: img.imageId,
          artifactId: img.artifactId,
          existing: img.existing,
          ...(up.at?.uploaded ? { at: up.at.uploaded } : {}),
          ...(state.source?.arches[a!.arch] ? { sourceImage: state.source.image, sourceDigest: state.source.arches[a!.arch] } : {}),
        });
      }
    }
  }
  return out;
}

export function summarize(state: BuildState, dir: string): BuildSummary {
  const artifacts: BuildSummary['artifacts'] = [];
  for (const a of Object.values(state.arches) as Array<ArchState | undefined>) {
    if (a?.step !== 'fetched') continue;
    for (const art of a.artifacts ?? []) {
      artifacts.push({ arch: a.arch, type: art.type, imageName: art.imageName, path: art.disk.path, size: art.disk.size, sha256: art.disk.sha256 });
    }
  }
  return {
    buildId: state.buildId,
    dir,
    status: state.status,
    startedAt: state.startedAt,
    ...(state.finishedAt ? { finishedAt: state.finishedAt } : {}),
    ...(state.key ? { key: state.key } : {}),
    ...(state.trigger ? { trigger: state.trigger } : {}),
    arches: state.arches,
    images: publishedOf(state),
    artifacts,
  };
}

/** Build ids under the builds directory, newest first; none if it does not exist yet. */
async function buildIds(buildsDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(buildsDir);
  } catch {
    return [];
  }
  return names.filter(isBuildId).sort(compareIdsDesc);
}

/** Builds newest first, at most `limit` of them; directories without a readable state are skipped. */
export async function listBuilds(buildsDir: string, opts: { limit?: number; onSkipped?: OnSkipped } = {}): Promise<BuildSummary[]> {
  const limit = opts.limit ?? Infinity;
  const out: BuildSummary[] = [];
  for (const id of await buildIds(buildsDir)) {
    if (out.length >= limit) break;
    const dir = join(buildsDir, id);
    const state = await readState(dir, opts.onSkipped);
    if (state) out.push(summarize(state, dir));
  }
  return out;
}

/** The newest build that succeeded, if any. */
export async function lastSuccessful(buildsDir: string): Promise<BuildSummary | undefined> {
  for (const id of await buildIds(buildsDir)) {
    const dir = join(buildsDir, id);
    const state = await readState(dir, undefined);
    if (state?.status !== 'succeeded') continue;
    const summary = summarize(state, dir);
    const keyParts = await readKeyParts(dir, state.key);
    return keyParts ? { ...summary, keyParts } : summary;
  }
  return undefined;
}

/**
 * Every image any build published, newest upload first (an upload finished later by
 * `farm upload` counts from when it finished).
 */
export async function publishedImages(buildsDir: string, opts: { onSkipped?: OnSkipped } = {}): Promise<PublishedRecord[]> {
  const builds = await listBuilds(buildsDir, opts);
  const records = builds.flatMap((b) => b.images.map((img) => ({ img, when: Date.parse(img.at ?? b.startedAt) || 0 })));
  // Array.prototype.sort is stable: equal times keep the builds' newest-first order.
  return records.sort((x, y) => y.when - x.when).map((r) => r.img);
}
