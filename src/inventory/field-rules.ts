// Rules on single fields of the inventory that a pattern cannot say well, each with the fix (the
// adapter that makes them zod issues, and the SSH file rules the target kinds share, live in
// src/core/fields.ts). Each rule is for something that would otherwise fail only on a worker, at an
// upload or in a child process.

import { posix } from 'node:path';
import { ruled, identityFileRule, knownHostsRule, type Rule } from '../core/fields.ts';

export { ruled, identityFileRule, knownHostsRule, type Rule };

/**
 * Paths on a worker (storage, output_dir, podman_socket). They become bind mounts in the builder
 * container (`<storage>:/var/lib/containers/storage`, where ':' and ',' separate fields), SSH
 * socket forwards and `rm` targets, so they must mean exactly what they say. Relative paths are
 * the schema's pattern's business.
 */
export function remotePathRule(path: string): Rule | undefined {
  if (!path.startsWith('/')) return undefined;
  if (/^\/+$/.test(path)) {
    return { message: "'/' is the whole filesystem of the worker", fix: 'use a directory of its own, e.g. /var/lib/farm/output' };
  }
  const sep = [':', ','].filter((c) => path.includes(c));
  if (sep.length > 0) {
    return {
      message: `'${path}' contains ${sep.map((c) => `'${c}'`).join(' and ')}, which separate the fields of a bind mount (source:target:options)`,
      fix: "use a path without ':' and ','",
    };
  }
  const normal = posix.normalize(path).replace(/(.)\/+$/, '$1');
  if (path.split('/').includes('..')) {
    return { message: `'${path}' has a '..' segment: it does not name what it seems to`, fix: `write the path it means${normal === '/' ? '' : `, e.g. ${normal}`}` };
  }
  if (path.endsWith('/')) return { message: `'${path}' ends with '/'`, fix: `write ${normal}` };
  if (normal !== path) return { message: `'${path}' has empty or '.' segments`, fix: `write ${normal}` };
  return undefined;
}

const GIT_CREDENTIAL_FIX =
  'remove the credentials from the URL: for https, a git credential helper (git config --global credential.helper store, or the GIT_ASKPASS of your CI) supplies them; or use an SSH URL (ssh://git@host/repo or git@host:repo) with a deploy key';

/**
 * service.source.git.url. A token or password in the URL is shown on the status page, in `ps`
 * and in git's own messages; remote helpers (ext::, fd::) run commands instead of fetching.
 */
export function gitUrlRule(url: string): Rule | undefined {
  const u = url.trim();
  if (/^(ext|fd)::/i.test(u)) {
    return { message: `the ${u.slice(0, u.indexOf('::'))}:: remote helper runs a command instead of fetching a repository`, fix: 'use an https://, ssh:// or git@host:path URL, or a local path' };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(u)?.[1]?.toLowerCase();
  if (scheme === undefined) return undefined; // scp-like git@host:path or a local path: the user is a login name
  const authority = u.slice(scheme.length + 3).split(/[/?#]/, 1)[0]!;
  const at = authority.lastIndexOf('@');
  if (at < 0) return undefined;
  const userinfo = authority.slice(0, at);
  if (userinfo.includes(':')) {
    return { message: 'no password in the URL: this one carries user:password@, which would show on the status page and in process lists', fix: GIT_CREDENTIAL_FIX };
  }
  // ssh://git@host/repo names a login, not a secret; over http(s) anything before '@' is a credential.
  if (scheme === 'http' || scheme === 'https') {
    return { message: `no credentials in an ${scheme} URL: this one carries a token or user name before '@', which would show on the status page and in process lists`, fix: GIT_CREDENTIAL_FIX };
  }
  return undefined;
}

/**
 * service.source.git containerfile and context: paths inside the clone. The clone lives in the
 * builds dir, so a path leaving it would build from the farm's own records (or anything else).
 */
export function repoPathRule(path: string): Rule | undefined {
  const p = path.trim();
  if (p.startsWith('/') || p.startsWith('~')) {
    return { message: `'${p}' is not a path inside the repository`, fix: "write it relative to the repository's top directory, e.g. Containerfile or images/builder" };
  }
  if (posix.normalize(p).split('/')[0] === '..') {
    return { message: `'${p}' leaves the repository`, fix: "write a path inside the repository, relative to its top directory ('.' is the top)" };
  }
  return undefined;
}
