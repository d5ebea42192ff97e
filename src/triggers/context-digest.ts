// Digests of local source files for the build key: a file's content, and a build context's tree
// (every path, its type and mode, file contents, symlink targets). Contents are streamed through
// the hash, so a context holding large files costs disk reads, not memory. mtimes, owners and
// sizes-on-disk are left out: touching or copying a file without changing it changes no image.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import dockerignore, { type Ignore } from '@balena/dockerignore';
import { FarmError, errorMessage, throwIfAborted } from '../errors.ts';

export async function fileDigest(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash, signal ? { signal } : {});
  return 'sha256:' + hash.digest('hex');
}

/** Ignore files podman reads from the context root, in its order of preference. */
export const IGNORE_FILES = ['.containerignore', '.dockerignore'] as const;

export interface ContextDigest {
  digest: string;
  files: number;
  bytes: number;
  /** The ignore file honoured, if any. */
  ignoreFile?: string;
}

export interface ContextOptions {
  signal: AbortSignal;
  /**
   * Absolute paths left out of the digest even though they are in the context: the farm's own
   * builds directory (its records change with every build) and the like.
   */
  exclude?: string[];
}

async function loadIgnore(dir: string): Promise<{ ig: Ignore; file?: string; negations: boolean } | undefined> {
  for (const name of IGNORE_FILES) {
    let text: string;
    try {
      text = await readFile(join(dir, name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new FarmError('INVENTORY', `cannot read ${join(dir, name)}: ${errorMessage(err)}`, { hint: 'make it readable by the user running farm' });
    }
    const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    // Docker matches case-sensitively; the library's default is not to.
    return { ig: ignore({ ignorecase: false }).add(lines), file: name, negations: lines.some((l) => l.startsWith('!')) };
  }
  return undefined;
}

// The package is CommonJS (module.exports = factory) while its types declare an ES default export.
const ignore = dockerignore as unknown as typeof dockerignore.default;

const toPosix = (p: string) => (sep === '/' ? p : p.split(sep).join('/'));

/**
 * Digests the context directory as podman's build sees it: what the ignore file leaves out is
 * left out here too. `.git` directories are skipped: a fetch rewrites their files without
 * changing the tree the build copies.
 */
export async function contextDigest(dir: string, opts: ContextOptions): Promise<ContextDigest> {
  const root = await lstat(dir).catch((err: NodeJS.ErrnoException) => {
    throw new FarmError('INVENTORY', `build context ${dir} cannot be read (${err.code ?? err.message})`, {
      hint: "check source.context; relative paths start from the inventory file's directory",
    });
  });
  if (!root.isDirectory()) throw new FarmError('INVENTORY', `build context ${dir} is not a directory`, { hint: 'point source.context at a directory' });

  const rules = await loadIgnore(dir);
  const excluded = new Set(opts.exclude ?? []);
  const tree = createHash('sha256');
  const result: ContextDigest = { digest: '', files: 0, bytes: 0, ...(rules?.file ? { ignoreFile: rules.file } : {}) };

  const walk = async (abs: string): Promise<void> => {
    throwIfAborted(opts.signal);
    // Byte order, not locale order: the same tree gives the same digest on every host.
    const names = (await readdir(abs)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const name of names) {
      const path = join(abs, name);
      const rel = toPosix(relative(dir, path));
      if (excluded.has(path) || name === '.git') continue;
      const ignored = rules?.ig.ignores(rel) ?? false;
      const st = await lstat(path);
      if (st.isDirectory()) {
        // An ignored directory may still hold re-included ("!pattern") files.
        if (ignored && !rules?.negations) continue;
        if (!ignored) tree.update(JSON.stringify(['d', rel, st.mode & 0o7777]) + '\n');
        await walk(path);
      } else if (ignored) {
        continue;
      } else if (st.isFile()) {
        tree.update(JSON.stringify(['f', rel, st.mode & 0o7777, await fileDigest(path, opts.signal)]) + '\n');
        result.files++;
        result.bytes += st.size;
      } else if (st.isSymbolicLink()) {
        tree.update(JSON.stringify(['l', rel, await readlink(path)]) + '\n');
      } else {
        tree.update(JSON.stringify(['o', rel, st.mode]) + '\n');
      }
    }
  };
  try {
    await walk(dir);
  } catch (err) {
    if (err instanceof FarmError) throw err;
    if (opts.signal.aborted) throw new FarmError('ABORTED', 'cancelled', { cause: err });
    throw new FarmError('INVENTORY', `cannot read the build context ${dir}: ${errorMessage(err)}`, {
      hint: 'every file in the context must be readable by the user running farm (or listed in .containerignore)',
    });
  }
  result.digest = 'sha256:' + tree.digest('hex');
  return result;
}
