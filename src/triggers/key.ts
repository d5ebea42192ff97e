// The build key: one digest of everything that decides the images, so a build whose key equals
// the last successful build's would make the same images and can be skipped (--if-changed, and
// `farm serve` deciding whether a trigger builds).
//
// In the key: the Containerfile, the context's tree as the build sends it (paths, modes,
// contents; see workers/podman/context.ts for what is left out), build args, the builder (image
// ref, rootfs, extra_args, config.toml content), the digests of the builder image and of the
// Containerfile's base images as a worker's podman has them, the arches built, their image types
// and the naming template and name.
// Not in the key: worker hosts and their settings, coordinator settings and upload targets (except
// through the image types a target implies): they change where images are built or go, not what
// they are. Uploading to a new target is `farm upload`, not a rebuild.
// A digest that cannot be resolved (no worker reachable, image not on the worker yet) is recorded
// as 'unresolved', so the key still follows the files; it changes once the digest resolves.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Arch } from '../core/arch.ts';
import { FarmError, errorMessage } from '../core/errors.ts';
import type { LoadedInventory } from '../inventory/schema.ts';
import { inventoryArches } from '../plan/plan.ts';
import { imageTypesFor } from '../plan/image-types.ts';
import { buildSource, imageSpec } from '../plan/source.ts';
import { resolveImage, type ImageSourceSpec, type ResolvedImage } from '../registry/resolve.ts';
import { contextDigest, fileDigest } from './context-digest.ts';
import { imageRefs } from './image-refs.ts';
import { workerInspector, type Inspect } from './inspect.ts';

/** Bump when what goes into the key changes, so old keys never match new ones by accident. */
export const KEY_VERSION = '2';

export const UNRESOLVED = 'unresolved';

export interface BuildKey {
  /** 'sha256:' + hex over the sorted parts. */
  key: string;
  parts: Record<string, string>;
  /** Image refs whose digest could not be resolved, and why (empty when all resolved). */
  unresolved: string[];
  notes: string[];
  /** An image source's list as read for this key: the build pulls exactly these digests. */
  image?: ResolvedImage;
}

export interface KeyOptions {
  signal: AbortSignal;
  /** Digest (or id) of an image reference, undefined if unknown. Default: ask a worker's podman. */
  inspect?: (ref: string) => Promise<string | undefined>;
  /** Arches the build makes (default: every arch of the inventory, as `--arch all`). */
  arches?: readonly Arch[];
  /** Reads an image source's list (default: the registry, with the user's auth file). */
  resolveImage?: (spec: ImageSourceSpec, signal: AbortSignal) => Promise<ResolvedImage>;
  env?: NodeJS.ProcessEnv;
}

/** The key over a set of parts: sorted by name so the order they were gathered in never matters. */
export function keyOf(parts: Record<string, string>): string {
  const sorted = Object.keys(parts)
    .sort()
    .map((k) => [k, parts[k]]);
  return 'sha256:' + createHash('sha256').update(JSON.stringify(sorted)).digest('hex');
}

export async function computeBuildKey(loaded: LoadedInventory, opts: KeyOptions): Promise<BuildKey> {
  const inv = loaded.inventory;
  const arches = opts.arches ?? inventoryArches(loaded);
  const parts: Record<string, string> = { 'farm.key_version': KEY_VERSION };
  const notes: string[] = [];

  const spec = imageSpec(loaded);
  if (spec) return imageSourceKey(loaded, spec, parts, arches, opts);

  // Source files.
  const source = buildSource(loaded);
  let text: string;
  try {
    text = await readFile(source.containerfile, 'utf8');
  } catch (err) {
    throw new FarmError('INVENTORY', `cannot read the Containerfile ${source.containerfile}: ${errorMessage(err)}`, {
      hint: "check source.containerfile; relative paths start from the inventory file's directory",
    });
  }
  parts['source.containerfile'] = 'sha256:' + createHash('sha256').update(text).digest('hex');
  const ctx = await contextDigest(source, opts.signal);
  parts['source.context'] = ctx.digest;
  if (ctx.ignoreFile) notes.push(`context: ${ctx.files} file(s), ${ctx.ignoreFile} honoured`);
  parts['source.build_args'] = JSON.stringify(Object.entries(inv.source.build_args).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

  outputParts(loaded, parts, arches);
  await builderConfigPart(loaded, parts, opts.signal);

  // Image digests.
  const refs = imageRefs(text, inv.source.build_args);
  const unresolved: string[] = [];
  for (const raw of refs.unexpanded) {
    parts[`base.${raw}`] = UNRESOLVED;
    unresolved.push(`${raw} (depends on the arch or an ARG form farm does not expand)`);
  }
  await digestParts(loaded, [['builder.image.digest', inv.builder.image], ...refs.refs.map((r): [string, string] => [`base.${r}`, r])], parts, unresolved, notes, arches, opts);
  return { key: keyOf(parts), parts, unresolved, notes };
}

/**
 * An image source's key: the list's digest and each built arch's manifest digest (an arch the
 * list lacks is 'absent'; the build refuses it), with the builder and outputs as for a
 * Containerfile. The list is read once (GET); the build then pulls these very digests.
 */
async function imageSourceKey(loaded: LoadedInventory, spec: ImageSourceSpec, parts: Record<string, string>, arches: readonly Arch[], opts: KeyOptions): Promise<BuildKey> {
  const image = await (opts.resolveImage ? opts.resolveImage(spec, opts.signal) : resolveImage(spec, opts.env ?? process.env, opts.signal));
  parts['source.image'] = spec.image;
  parts['source.digest'] = image.digest;
  for (const arch of arches) parts[`source.${arch}.digest`] = image.arches[arch] ?? 'absent';
  outputParts(loaded, parts, arches);
  await builderConfigPart(loaded, parts, opts.signal);
  const unresolved: string[] = [];
  const notes: string[] = [`image ${spec.image} at ${image.digest}`];
  await digestParts(loaded, [['builder.image.digest', loaded.inventory.builder.image]], parts, unresolved, notes, arches, opts);
  return { key: keyOf(parts), parts, unresolved, notes, image };
}

function outputParts(loaded: LoadedInventory, parts: Record<string, string>, arches: readonly Arch[]): void {
  const inv = loaded.inventory;
  parts['arches'] = [...arches].sort().join(',');
  for (const arch of arches) parts[`arch.${arch}.types`] = imageTypesFor(inv.arches[arch]).join(',');
  parts['naming.name'] = inv.naming.name;
  parts['naming.template'] = inv.naming.template;
}

async function builderConfigPart(loaded: LoadedInventory, parts: Record<string, string>, signal: AbortSignal): Promise<void> {
  const inv = loaded.inventory;
  parts['builder.image'] = inv.builder.image;
  parts['builder.rootfs'] = inv.builder.rootfs;
  parts['builder.extra_args'] = JSON.stringify(inv.builder.extra_args);
  if (inv.builder.config) {
    const config = resolve(loaded.dir, inv.builder.config);
    parts['builder.config'] = await fileDigest(config, signal).catch((err: unknown) => {
      throw new FarmError('INVENTORY', `cannot read the builder config ${config}: ${errorMessage(err)}`, { hint: 'check builder.config' });
    });
  } else {
    parts['builder.config'] = 'none';
  }
}

/** The digests of image refs as a worker's podman has them (pinned refs name their own). */
async function digestParts(
  loaded: LoadedInventory,
  wanted: Array<[string, string]>,
  parts: Record<string, string>,
  unresolved: string[],
  notes: string[],
  arches: readonly Arch[],
  opts: KeyOptions,
): Promise<void> {
  const inspector = opts.inspect ? undefined : workerInspector(loaded, { signal: opts.signal, arches });
  const inspect: Inspect = opts.inspect ?? inspector!.inspect;
  try {
    for (const [part, ref] of wanted) {
      // A digest-pinned reference names its content already.
      const pinned = /@sha256:[0-9a-f]{64}$/.exec(ref)?.[0]?.slice(1);
      const digest = pinned ?? (await inspect(ref).catch(() => undefined));
      if (opts.signal.aborted) throw new FarmError('ABORTED', 'cancelled');
      parts[part] = digest ?? UNRESOLVED;
      if (!digest) unresolved.push(ref);
    }
  } finally {
    await inspector?.close();
  }
  if (inspector?.worker) notes.push(`image digests from ${inspector.worker}`);
  if (inspector && unresolved.length && inspector.problems.length) notes.push(...inspector.problems);
}

/**
 * Resolves the digests a key left unresolved, keeping every other part as it was. After a build
 * pulled its base or builder image, the key recorded for it names those images, so the next
 * --if-changed compares against what the build really used (files are not digested again: they
 * may have changed while it ran).
 */
export async function refreshUnresolved(loaded: LoadedInventory, key: BuildKey, opts: KeyOptions): Promise<BuildKey> {
  const pending = Object.keys(key.parts).filter((p) => key.parts[p] === UNRESOLVED && (p === 'builder.image.digest' || p.startsWith('base.')));
  const refOf = (part: string) => (part === 'builder.image.digest' ? loaded.inventory.builder.image : part.slice('base.'.length));
  const candidates = pending.filter((p) => !refOf(p).includes('$'));
  if (candidates.length === 0) return key;
  const inspector = opts.inspect ? undefined : workerInspector(loaded, { signal: opts.signal, ...(opts.arches ? { arches: opts.arches } : {}) });
  const inspect: Inspect = opts.inspect ?? inspector!.inspect;
  const parts = { ...key.parts };
  try {
    for (const part of candidates) {
      const digest = await inspect(refOf(part)).catch(() => undefined);
      if (digest) parts[part] = digest;
    }
  } finally {
    await inspector?.close();
  }
  const unresolved = key.unresolved.filter((u) => !candidates.some((p) => parts[p] !== UNRESOLVED && refOf(p) === u));
  return { key: keyOf(parts), parts, unresolved, notes: key.notes };
}
