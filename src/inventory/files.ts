// Paths in the inventory: resolved against the inventory file's directory (`~/` is HOME), and,
// for `inventory check`, checked to exist before any worker is contacted.

import { AWS_POOL_PROVIDER } from '../../workers/pools/types.ts';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Inventory } from './schema.ts';
import { isRecord } from './zod-walk.ts';
import { kindFor, kindOf } from '../targets.ts';
import type { Draft } from './issues.ts';
import type { PathSegment } from './problems.ts';

const home = () => process.env.HOME || homedir();

/** `~` and `~/x` → HOME; absolute paths as they are; others relative to `dir`. */
export function resolveInventoryPath(p: string, dir: string): string {
  if (p === '~') return home();
  if (p.startsWith('~/')) return join(home(), p.slice(2));
  return resolve(dir, p);
}

export const defaultKnownHosts = () => join(home(), '.ssh', 'known_hosts');

/** A copy of the inventory with every local path absolute. */
export function resolvePaths(inv: Inventory, dir: string): Inventory {
  const out = structuredClone(inv); // also detaches the result from the schema's shared defaults
  const r = (p: string) => resolveInventoryPath(p, dir);
  const opt = (p: string | undefined) => (p === undefined ? undefined : r(p));
  if (out.source.containerfile !== undefined) out.source.containerfile = r(out.source.containerfile);
  out.source.context = r(out.source.context);
  if (out.builder.config !== undefined) out.builder.config = r(out.builder.config);
  out.settings.builds_dir = r(out.settings.builds_dir);
  for (const w of out.workers) {
    if (w.identity_file !== undefined) w.identity_file = opt(w.identity_file);
    if (w.known_hosts !== undefined) w.known_hosts = opt(w.known_hosts);
  }
  for (const p of out.pools) {
    if (p.settings.provider === AWS_POOL_PROVIDER) continue; // its keys are made per VM
    if (p.settings.identity_file !== undefined) p.settings.identity_file = opt(p.settings.identity_file);
    if (p.settings.known_hosts !== undefined) p.settings.known_hosts = opt(p.settings.known_hosts);
    // A program named by a relative path (./x, ../x) is the inventory's own; a bare name is PATH's.
    const prog = (argv: string[]) => (/^\.\.?\//.test(argv[0] ?? '') ? [r(argv[0]!), ...argv.slice(1)] : argv);
    if (p.settings.provider === 'resalloc') p.settings.command = prog(p.settings.command);
    else {
      p.settings.allocate = prog(p.settings.allocate);
      p.settings.release = prog(p.settings.release);
    }
  }
  for (const section of Object.values(out.arches)) {
    for (const t of section?.targets ?? []) {
      // Endpoints a kind connects to itself (e.g. hypervisors): their files, in place.
      for (const { files } of kindFor(t).sshEndpoints?.(t) ?? []) {
        if (files.identity_file !== undefined) files.identity_file = opt(files.identity_file);
        if (files.known_hosts !== undefined) files.known_hosts = opt(files.known_hosts);
      }
    }
  }
  return out;
}

type Kind = 'file' | 'directory';

async function checkPath(path: PathSegment[], file: string, kind: Kind, what: string): Promise<Draft | undefined> {
  try {
    const st = await stat(file);
    if (kind === 'file' && !st.isFile()) {
      return { path, message: `${what} ${file} is ${st.isDirectory() ? 'a directory' : 'not a regular file'}`, fix: `point it at the file itself${st.isDirectory() && what === 'Containerfile' ? `, e.g. ${join(file, 'Containerfile')}` : ''}` };
    }
    if (kind === 'directory' && !st.isDirectory()) {
      return { path, message: `${what} ${file} is not a directory`, fix: 'point it at a directory (relative paths start from the inventory file\'s directory)' };
    }
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return { path, message: `${what} ${file} does not exist`, fix: "check the path; relative paths start from the inventory file's directory" };
    }
    return { path, message: `cannot read ${what} ${file} (${code ?? String(err)})`, fix: 'make it readable by the user running farm' };
  }
}

async function keyFile(path: PathSegment[], file: string): Promise<Draft[]> {
  const missing = await checkPath(path, file, 'file', 'identity file');
  if (missing) return [missing];
  try {
    await access(file, constants.R_OK);
  } catch {
    return [{ path, message: `identity file ${file} is not readable`, fix: 'make it readable by the user running farm (and by nobody else: chmod 600)' }];
  }
  const mode = (await stat(file)).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    // OpenSSH refuses such keys ("UNPROTECTED PRIVATE KEY FILE"), and they should not be shared.
    return [{ path, message: `identity file ${file} is accessible by group or others (mode ${mode.toString(8).padStart(4, '0')})`, fix: `chmod 600 ${file}` }];
  }
  return [];
}

/** SSH endpoint settings shared by workers and the endpoints of target kinds. */
async function sshFiles(entry: Record<string, unknown>, path: PathSegment[], dir: string): Promise<Draft[]> {
  const out: Draft[] = [];
  const str = (k: string) => (typeof entry[k] === 'string' && (entry[k] as string).trim() !== '' ? (entry[k] as string) : undefined);
  const identity = str('identity_file');
  if (identity) out.push(...(await keyFile([...path, 'identity_file'], resolveInventoryPath(identity, dir))));
  if (entry.host_key === undefined) {
    const given = str('known_hosts');
    const file = given ? resolveInventoryPath(given, dir) : defaultKnownHosts();
    const problem = await checkPath([...path, 'known_hosts'], file, 'file', 'known_hosts file');
    if (problem) {
      out.push(
        given
          ? problem
          : {
              path: [...path, 'known_hosts'],
              message: `no host_key or known_hosts given, and the default ${file} does not exist: the host key could not be verified`,
              fix: 'set known_hosts: <a file holding the host key>, or pin host_key: SHA256:... (ssh-keygen -lf on the host key, checked out of band)',
            },
      );
    }
  }
  return out;
}

/** Checks that the local files the inventory names exist and are usable. */
export async function checkFiles(data: unknown, dir: string): Promise<Draft[]> {
  if (!isRecord(data)) return [];
  const checks: Promise<Draft | Draft[] | undefined>[] = [];
  const str = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v : undefined);

  if (isRecord(data.source)) {
    const cf = str(data.source.containerfile);
    if (cf) checks.push(checkPath(['source', 'containerfile'], resolveInventoryPath(cf, dir), 'file', 'Containerfile'));
    const ctx = data.source.context === undefined ? '.' : str(data.source.context);
    if (ctx && data.source.image === undefined) checks.push(checkPath(['source', 'context'], resolveInventoryPath(ctx, dir), 'directory', 'build context'));
  }
  if (isRecord(data.builder)) {
    const config = str(data.builder.config);
    if (config) checks.push(checkPath(['builder', 'config'], resolveInventoryPath(config, dir), 'file', 'builder config'));
  }
  if (Array.isArray(data.workers)) {
    data.workers.forEach((w, i) => {
      if (isRecord(w)) checks.push(sshFiles(w, ['workers', i], dir));
    });
  }
  if (Array.isArray(data.pools)) {
    data.pools.forEach((p, i) => {
      // VMs the farm does not make are vouched for by known_hosts, like static workers.
      // An aws pool's keys are made per VM, its host key pinned.
      if (isRecord(p) && isRecord(p.settings) && p.settings.provider !== AWS_POOL_PROVIDER) checks.push(sshFiles(p.settings, ['pools', i, 'settings'], dir));
    });
  }
  if (isRecord(data.arches)) {
    for (const [arch, section] of Object.entries(data.arches)) {
      if (!isRecord(section) || !Array.isArray(section.targets)) continue;
      section.targets.forEach((t, i) => {
        const kind = isRecord(t) ? kindOf(t.kind) : undefined;
        // Only a target its kind's schema accepts names endpoints; the schema reports the others.
        const parsed = kind?.sshEndpoints ? kind.schema.safeParse(t) : undefined;
        if (!kind?.sshEndpoints || !parsed?.success) return;
        for (const { path, files } of kind.sshEndpoints(parsed.data)) {
          checks.push(sshFiles(files as Record<string, unknown>, ['arches', arch, 'targets', i, ...path], dir));
        }
      });
    }
  }
  return (await Promise.all(checks)).flat().filter((d): d is Draft => d !== undefined);
}
