// Reads the host's container storage (mounted at /var/lib/containers/storage like bib needs it)
// without podman: images.json names an image's top layer, layers.json chains layers to their
// parents, and the overlay driver keeps each layer's files in overlay/<id>/diff.
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './run.mjs';

export const STORAGE = '/var/lib/containers/storage';
const MOUNTPOINT = '/run/bib-rootfs';

const DRIVERS = ['overlay', 'vfs'];

function isMountPoint(path) {
  const info = readFileSync('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .some((line) => line.split(' ')[4]?.replace(/\\040/g, ' ') === path);
}

/** Like bib: the storage must be mounted and hold a graph driver's images. */
export function checkStorage() {
  const why = !isMountPoint(STORAGE)
    ? `${STORAGE} is not a mount point`
    : !DRIVERS.some((d) => existsSync(join(STORAGE, `${d}-images`)))
      ? `stat ${STORAGE}/overlay-images: no such file or directory`
      : null;
  if (why) {
    throw new Error(
      `could not access container storage, did you forget -v ${STORAGE}:${STORAGE}? (${why})`,
    );
  }
}

function readJson(path, fallback) {
  if (!existsSync(path)) return fallback;
  const text = readFileSync(path, 'utf8');
  return text.trim() === '' ? fallback : JSON.parse(text);
}

// podman's short-name rules for local images: a missing tag means :latest, and a name without a
// registry part is looked up under localhost/.
function candidates(ref) {
  const out = new Set([ref]);
  const lastSlash = ref.lastIndexOf('/');
  const hasTag = ref.slice(lastSlash + 1).includes(':') || ref.includes('@');
  const tagged = hasTag ? ref : `${ref}:latest`;
  out.add(tagged);
  const first = ref.split('/')[0];
  const hasRegistry = ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (!hasRegistry) out.add(`localhost/${tagged}`);
  return [...out];
}

/** Finds IMAGE_REF (name, id or unique id prefix) in the mounted storage. */
export function findImage(ref) {
  for (const driver of DRIVERS) {
    const images = readJson(join(STORAGE, `${driver}-images`, 'images.json'), null);
    if (!images) continue;
    const names = candidates(ref);
    let img = images.find((i) => (i.names ?? []).some((n) => names.includes(n)));
    const hex = ref.replace(/^sha256:/, '');
    if (!img && /^[0-9a-f]{3,64}$/.test(hex)) {
      const byId = images.filter((i) => i.id.startsWith(hex));
      if (byId.length > 1) throw new Error(`image id prefix "${ref}" is ambiguous in ${STORAGE}`);
      img = byId[0];
    }
    if (img) {
      return { driver, id: img.id, digest: img.digest ?? null, names: img.names ?? [], topLayer: img.layer };
    }
  }
  throw new Error(
    `cannot find image "${ref}" in ${STORAGE}: build it or pull it on this host first (bib converts local images only)`,
  );
}

/**
 * The image's config (the OCI config blob podman keeps as the image's big data "sha256:<id>",
 * in a file named "=" + base64 of that key): architecture, os, config.Labels...
 */
export function imageConfig(image) {
  const key = `sha256:${image.id}`;
  const file = join(STORAGE, `${image.driver}-images`, image.id, `=${Buffer.from(key).toString('base64')}`);
  if (!existsSync(file)) throw new Error(`image ${image.id} has no config in ${STORAGE} (missing ${file})`);
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** The image's layers, top first. */
export function layerChain(image) {
  const dir = join(STORAGE, `${image.driver}-layers`);
  const layers = [...readJson(join(dir, 'layers.json'), []), ...readJson(join(dir, 'volatile-layers.json'), [])];
  const byId = new Map(layers.map((l) => [l.id, l]));
  const chain = [];
  for (let id = image.topLayer; id; ) {
    const layer = byId.get(id);
    if (!layer) throw new Error(`layer ${id} of image ${image.id} is missing from ${dir}/layers.json`);
    chain.push(layer);
    if (chain.length > 500) throw new Error(`layer chain of image ${image.id} does not end`);
    id = layer.parent;
  }
  return chain;
}

/**
 * Makes the image's root filesystem visible as a directory: a read-only overlay of the layers'
 * diff dirs (we are privileged), the single diff dir of a one-layer image, or vfs's full copy.
 * With `extra` (a directory of files the stand-in adds, such as the bootloader's config), that
 * directory is the overlay's top layer. Returns { dir, release() }.
 */
export async function openRootfs(image, chain, log, extra = null) {
  if (image.driver === 'vfs') {
    const dir = join(STORAGE, 'vfs', 'dir', image.topLayer);
    return extra ? mountOverlay([extra, dir], STORAGE, log) : { dir, release: async () => {} };
  }
  const base = join(STORAGE, 'overlay');
  if (chain.length === 1 && !extra) {
    return { dir: join(base, chain[0].id, 'diff'), release: async () => {} };
  }
  // Short links (overlay/l/XXXX) keep the mount options under the kernel's page-size limit, the
  // same way podman does; they are relative to overlay/, the mount's working directory.
  const lowers = chain.map((l) => {
    const linkFile = join(base, l.id, 'link');
    if (existsSync(linkFile)) {
      const link = readFileSync(linkFile, 'utf8').trim();
      if (existsSync(join(base, 'l', link))) return `l/${link}`;
    }
    const diff = join(base, l.id, 'diff');
    statSync(diff);
    return diff;
  });
  return mountOverlay(extra ? [extra, ...lowers] : lowers, base, log);
}

async function mountOverlay(lowers, cwd, log) {
  mkdirSync(MOUNTPOINT, { recursive: true });
  log.debug(`mount -t overlay -o ro,lowerdir=${lowers.join(':')} (in ${cwd})`);
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${lowers.join(':')}`, MOUNTPOINT], { cwd });
  let mounted = true;
  return {
    dir: MOUNTPOINT,
    release: async () => {
      if (!mounted) return;
      mounted = false;
      await run('umount', [MOUNTPOINT]).catch(() => {});
      try {
        rmdirSync(MOUNTPOINT);
      } catch {
        // still mounted or already gone; the container's mount namespace ends with it anyway
      }
    },
  };
}
