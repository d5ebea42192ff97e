// Registry credentials from the user's containers auth file, in the order podman and skopeo read
// them: $REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json,
// ~/.config/containers/auth.json, then Docker's ~/.docker/config.json. Keys may name a registry
// (host[:port], with or without https:// and /v1/) or a namespace in it (host/ns/repo); the most
// specific key that matches the repository wins. credHelpers/credsStore are not run.

import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { FarmError } from '../core/errors.ts';
import { registerSecret } from '../core/redact.ts';

export interface RegistryCredentials {
  username: string;
  password: string;
  /** The file they came from (for messages; never the values). */
  file: string;
}

export function authFileCandidates(env: NodeJS.ProcessEnv): string[] {
  const home = env.HOME || homedir();
  const out: string[] = [];
  if (env.REGISTRY_AUTH_FILE) out.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) out.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  out.push(join(home, '.config', 'containers', 'auth.json'), join(home, '.docker', 'config.json'));
  return out;
}

/** A key of `auths` as a comparable "host[/path]" (scheme and Docker's /v1/ left out). */
export function normalizeAuthKey(key: string): string {
  let k = key.trim().replace(/^https?:\/\//, '').replace(/\/+$/, '');
  k = k.replace(/\/v[12]$/, '');
  if (k === 'index.docker.io' || k === 'registry-1.docker.io') k = 'docker.io';
  return k;
}

/** The credentials of one parsed auth file for registry/repository, or undefined. */
export function credentialsIn(json: unknown, file: string, registry: string, repository: string): RegistryCredentials | undefined {
  const auths = (json as { auths?: unknown })?.auths;
  if (typeof auths !== 'object' || auths === null) return undefined;
  const full = `${registry}/${repository}`;
  let best: { len: number; entry: Record<string, unknown> } | undefined;
  for (const [key, entry] of Object.entries(auths as Record<string, unknown>)) {
    const k = normalizeAuthKey(key);
    const matches = k === registry || full === k || full.startsWith(`${k}/`);
    if (!matches || typeof entry !== 'object' || entry === null) continue;
    if (!best || k.length > best.len) best = { len: k.length, entry: entry as Record<string, unknown> };
  }
  if (!best) return undefined;
  const e = best.entry;
  if (typeof e.username === 'string' && typeof e.password === 'string') return { username: e.username, password: e.password, file };
  if (typeof e.auth === 'string' && e.auth !== '') {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i < 0) throw new FarmError('INVENTORY', `${file}: the "auth" of ${registry} is not base64 of user:password`, { hint: 'log in again with podman login' });
    return { username: decoded.slice(0, i), password: decoded.slice(i + 1), file };
  }
  return undefined;
}

/**
 * The first auth file (in the containers order) holding credentials for the repository. A file
 * that exists but is not JSON is an error naming it; missing files are skipped. The password is
 * registered with redact() before it is returned.
 */
export async function readCredentials(registry: string, repository: string, env: NodeJS.ProcessEnv = process.env): Promise<RegistryCredentials | undefined> {
  for (const file of authFileCandidates(env)) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') continue;
      throw new FarmError('INVENTORY', `cannot read the auth file ${file}: ${(err as Error).message}`, { hint: 'make it readable by the user running farm' });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new FarmError('INVENTORY', `the auth file ${file} is not valid JSON`, { hint: 'fix it, or log in again with podman login' });
    }
    const creds = credentialsIn(json, file, registry, repository);
    if (creds) {
      registerSecret(creds.password);
      registerSecret(Buffer.from(`${creds.username}:${creds.password}`).toString('base64'));
      return creds;
    }
  }
  return undefined;
}
