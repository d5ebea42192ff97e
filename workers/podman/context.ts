// The build context, walked once for both of its uses: the tar streamed to a worker's podman
// (./build.ts) and the digest in the build key (src/triggers/context-digest.ts). Both take the
// same entries in the same order under the same rules, so the key covers exactly what is sent:
// - `.containerignore` (else `.dockerignore`) at the context root, as podman reads it: Docker's
//   patterns, `!` re-includes, the last matching line wins, a pattern matching a directory covers
//   everything below it; the Containerfile, Dockerfile and ignore files at the root are sent even
//   when listed (podman sends them too: the build reads them);
// - never sent, whatever the ignore file says: `.git` (anywhere), the lab's state `.lab` at the
//   root (private keys) and the paths the caller names (the farm's builds directory);
// - a symlink is sent as a symlink, never followed; one whose relative target climbs out of the
//   context is refused (on the worker it would point at nothing the build has). An absolute target
//   names a path in the image (a rootfs overlay's systemd links) and is sent as it is;
// - sockets, fifos and devices are skipped, as podman skips them.

import { createHash } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { lstat, readFile, readdir, readlink, realpath } from 'node:fs/promises';
import { join, posix, resolve } from 'node:path';
import dockerignore, { type Ignore } from '@balena/dockerignore';
import { FarmError, errorMessage, throwIfAborted } from '../../src/core/errors.ts';

/** Ignore files podman reads from the context root, in its order of preference. */
export const IGNORE_FILES = ['.containerignore', '.dockerignore'] as const;

/** Root entries podman sends even when the ignore file lists them. */
const ALWAYS_SENT = ['Containerfile', 'Dockerfile', ...IGNORE_FILES];

/** Never sent: git's own files anywhere, and scripts/lab's state (its SSH keys) at the root. */
const NEVER_SENT_NAMES = new Set(['.git']);
const NEVER_SENT_AT_ROOT = new Set(['.lab']);

/** Symlinks followed while checking where one leads, as the kernel's own limit (ELOOP). */
const MAX_LINK_HOPS = 40;

export interface ContextSource {
  /** The context directory. */
  contextDir: string;
  /** The Containerfile: if it lies inside the context, sent even when the ignore file lists it. */
  containerfile?: string;
  /** Paths inside the context that are never sent (the farm's builds directory). */
  exclude?: readonly string[];
}

interface EntryBase {
  /** Path relative to the context root, '/'-separated. */
  rel: string;
  abs: string;
  /** Permission bits. */
  mode: number;
  mtime: Date;
}
export type ContextEntry =
  | (EntryBase & { kind: 'dir' })
  | (EntryBase & { kind: 'file'; size: number })
  | (EntryBase & { kind: 'symlink'; target: string });

export interface ContextWalk {
  /** The context's real path. */
  root: string;
  /** The ignore file honoured, if any. */
  ignoreFile: string | undefined;
  entries: AsyncGenerator<ContextEntry>;
}

/** What a walk covered: the files sent, their bytes and the digest of the whole tree. */
export interface ContextSummary {
  files: number;
  bytes: number;
  digest: string;
  ignoreFile?: string;
}

// The package is CommonJS (module.exports = factory) while its types declare an ES default export.
const ignore = dockerignore as unknown as typeof dockerignore.default;
// Docker matches case-sensitively; the library's default is not to.
const matcher = (lines: readonly string[]): Ignore => ignore({ ignorecase: false }).add([...lines]);

const byteOrder = (a: Dirent, b: Dirent) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const escapeGlob = (path: string) => path.replace(/[\\*?[\]]/g, '\\$&');

/** The ignore file's rules, plus the test of whether a `!` line could re-include below a directory. */
class Rules {
  private readonly negations: string[][];

  constructor(
    private readonly ig: Ignore,
    lines: readonly string[],
  ) {
    this.negations = lines
      .map((l) => l.trim())
      .filter((l) => l.startsWith('!'))
      .map((l) => posix.normalize(l.slice(1).trim()).replace(/^\/+|\/+$/g, '').split('/'));
  }

  ignores(rel: string): boolean {
    return this.ig.ignores(rel);
  }

  /**
   * Whether some `!` pattern may match an entry at or below the ignored directory `rel`: only
   * then is it walked (podman walks every excluded directory; this skips node_modules and the like
   * unless a re-include can reach into them). Patterns with `**` or escapes are assumed to reach.
   */
  mayReinclude(rel: string): boolean {
    const dir = rel.split('/');
    return this.negations.some((pattern) => {
      for (let i = 0; ; i++) {
        if (i === pattern.length || i === dir.length) return true;
        const segment = pattern[i]!;
        if (segment.includes('**') || segment.includes('\\')) return true;
        if (!matcher([segment]).ignores(dir[i]!)) return false;
      }
    });
  }
}

async function loadRules(root: string, containerfileRel: string | undefined): Promise<{ rules: Rules; file: string } | undefined> {
  for (const name of IGNORE_FILES) {
    const path = join(root, name);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new FarmError('INVENTORY', `cannot read ${path}: ${errorMessage(err)}`, { hint: 'make it readable by the user running farm' });
    }
    const always = [...ALWAYS_SENT, ...(containerfileRel ? [containerfileRel] : [])].map((p) => `!${escapeGlob(p)}`);
    const lines = [...text.split(/\r?\n/), ...always];
    return { rules: new Rules(matcher(lines), lines), file: name };
  }
  return undefined;
}

/**
 * Where a link target leads from the directory `fromDir` (its path segments below the root), when
 * followed inside the context as the kernel would (through the context's other links): 'out' if it
 * climbs above the root, 'absolute' if it reaches an absolute target (a path in the image), else
 * the segments of the path it reaches.
 */
async function follow(root: string, fromDir: string[], target: string, hops = { n: 0 }): Promise<string[] | 'out' | 'absolute'> {
  if (target.startsWith('/')) return 'absolute';
  const at = [...fromDir];
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (at.length === 0) return 'out';
      at.pop();
      continue;
    }
    at.push(part);
    const st = await lstat(join(root, ...at)).catch(() => undefined);
    if (!st?.isSymbolicLink() || ++hops.n > MAX_LINK_HOPS) continue;
    const next = await follow(root, at.slice(0, -1), await readlink(join(root, ...at)), hops);
    if (typeof next === 'string') return next;
    at.splice(0, at.length, ...next);
  }
  return at;
}

async function realOrResolved(path: string): Promise<string> {
  return realpath(path).catch(() => resolve(path));
}

/** Walks the context: the entries podman's build gets, directories before their contents, in byte order. */
export async function walkContext(source: ContextSource, signal: AbortSignal): Promise<ContextWalk> {
  const root = await realpath(source.contextDir).catch((err: NodeJS.ErrnoException) => {
    throw new FarmError('INVENTORY', `build context ${source.contextDir} cannot be read (${err.code ?? err.message})`, {
      hint: "check source.context; relative paths start from the inventory file's directory",
    });
  });
  if (!(await lstat(root)).isDirectory()) {
    throw new FarmError('INVENTORY', `build context ${source.contextDir} is not a directory`, { hint: 'point source.context at a directory' });
  }
  const containerfile = source.containerfile ? posix.relative(root, await realOrResolved(source.containerfile)) : undefined;
  const loaded = await loadRules(root, containerfile && !containerfile.startsWith('..') ? containerfile : undefined);
  const excluded = new Set(await Promise.all((source.exclude ?? []).map(realOrResolved)));

  async function* walk(abs: string, rel: string): AsyncGenerator<ContextEntry> {
    throwIfAborted(signal);
    const children = (await readdir(abs, { withFileTypes: true })).sort(byteOrder);
    for (const child of children) {
      const childAbs = join(abs, child.name);
      const childRel = rel ? `${rel}/${child.name}` : child.name;
      if (NEVER_SENT_NAMES.has(child.name) || (!rel && NEVER_SENT_AT_ROOT.has(child.name)) || excluded.has(childAbs)) continue;
      const ignored = loaded?.rules.ignores(childRel) ?? false;
      if (child.isDirectory()) {
        if (ignored && !loaded!.rules.mayReinclude(childRel)) continue;
        if (!ignored) {
          const st = await lstat(childAbs);
          yield { kind: 'dir', rel: childRel, abs: childAbs, mode: st.mode & 0o7777, mtime: st.mtime };
        }
        yield* walk(childAbs, childRel);
      } else if (ignored) {
        continue;
      } else if (child.isFile()) {
        const st = await lstat(childAbs);
        yield { kind: 'file', rel: childRel, abs: childAbs, mode: st.mode & 0o7777, mtime: st.mtime, size: st.size };
      } else if (child.isSymbolicLink()) {
        const target = await readlink(childAbs);
        if ((await follow(root, rel ? rel.split('/') : [], target)) === 'out') {
          throw new FarmError('INVENTORY', `symlink ${childRel} in the build context ${root} points outside it (to ${target})`, {
            hint: `copy what it points to into the context, make it a link inside the context, or list ${childRel} in ${loaded?.file ?? '.containerignore'}`,
          });
        }
        const st = await lstat(childAbs);
        yield { kind: 'symlink', rel: childRel, abs: childAbs, mode: st.mode & 0o7777, mtime: st.mtime, target };
      }
    }
  }

  async function* entries(): AsyncGenerator<ContextEntry> {
    try {
      yield* walk(root, '');
    } catch (err) {
      if (err instanceof FarmError) throw err;
      if (signal.aborted) throw new FarmError('ABORTED', 'cancelled', { cause: err });
      throw new FarmError('INVENTORY', `cannot read the build context ${root}: ${errorMessage(err)}`, {
        hint: 'every file in the context must be readable by the user running farm (or listed in .containerignore)',
      });
    }
  }

  return { root, ignoreFile: loaded?.file, entries: entries() };
}

/**
 * The tree digest of a walk: every path, its type and mode, file contents (their sha256, fed by
 * the caller) and symlink targets. mtimes and owners are left out: touching or copying a file
 * without changing it changes no image.
 */
export class ContextDigest {
  private readonly tree = createHash('sha256');
  files = 0;
  bytes = 0;

  /** Adds an entry; a file with its content's digest ('sha256:' + hex). */
  add(entry: ContextEntry, contentDigest = ''): void {
    if (entry.kind === 'dir') this.line(['d', entry.rel, entry.mode]);
    else if (entry.kind === 'symlink') this.line(['l', entry.rel, entry.target]);
    else {
      this.line(['f', entry.rel, entry.mode, contentDigest]);
      this.files++;
      this.bytes += entry.size;
    }
  }

  summary(ignoreFile: string | undefined): ContextSummary {
    return { files: this.files, bytes: this.bytes, digest: `sha256:${this.tree.digest('hex')}`, ...(ignoreFile ? { ignoreFile } : {}) };
  }

  private line(fields: Array<string | number>): void {
    this.tree.update(JSON.stringify(fields) + '\n');
  }
}

/** What a build would send, counted without reading any file: checks the context before a build. */
export async function measureContext(source: ContextSource, signal: AbortSignal): Promise<Omit<ContextSummary, 'digest'>> {
  const walk = await walkContext(source, signal);
  let files = 0;
  let bytes = 0;
  for await (const e of walk.entries) {
    if (e.kind !== 'file') continue;
    files++;
    bytes += e.size;
  }
  return { files, bytes, ...(walk.ignoreFile ? { ignoreFile: walk.ignoreFile } : {}) };
}
