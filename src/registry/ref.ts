// Image references as containers tools read them: [registry[:port]/]repository[:tag][@digest].
// A first component with a '.', a ':' or 'localhost' is a registry; otherwise it is Docker Hub,
// whose one-component repositories live under library/.

export interface ImageRef {
  /** host[:port] as written (docker.io for Docker Hub). */
  registry: string;
  /** Where its API is: registry-1.docker.io for Docker Hub, else `registry`. */
  apiHost: string;
  repository: string;
  tag?: string | undefined;
  digest?: string | undefined;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Parses REF, or throws an Error saying what is wrong with it. */
export function parseImageRef(ref: string): ImageRef {
  let rest = ref.trim();
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new Error(`'${ref}': the digest after '@' must be sha256: and 64 hex digits`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new Error(`'${ref}': '${tag}' is not a valid tag`);
  }
  const parts = rest.split('/');
  let registry = 'docker.io';
  if (parts.length > 1 && (/[.:]/.test(parts[0]!) || parts[0] === 'localhost')) registry = parts.shift()!;
  if (parts.length === 0 || !parts.every((p) => COMPONENT.test(p))) {
    throw new Error(`'${ref}': the repository must be lower-case path components, e.g. quay.io/fedora/fedora-bootc:42`);
  }
  if (registry === 'docker.io' && parts.length === 1) parts.unshift('library');
  if (!tag && !digest) tag = 'latest';
  return { registry, apiHost: registry === 'docker.io' ? 'registry-1.docker.io' : registry, repository: parts.join('/'), tag, digest };
}

/** The reference a worker pulls: repository by digest, on its registry. */
export function pinned(ref: ImageRef, digest: string): string {
  return `${ref.registry}/${ref.repository}@${digest}`;
}

/** The tag or digest a manifest request names. */
export const reference = (ref: ImageRef): string => ref.digest ?? ref.tag ?? 'latest';
