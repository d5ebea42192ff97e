// What a manifest list (OCI image index or Docker manifest list) says: per platform, the digest of
// the arch's manifest. Only linux entries count; attestation manifests (platform unknown/unknown,
// as BuildKit pushes them) and variants other than the usual ones are left out.

import { createHash } from 'node:crypto';
import { ARCHES, type Arch } from '../core/arch.ts';
import { LIST_TYPES, MANIFEST_TYPES } from './client.ts';

/** OCI/Go arch names to the farm's. */
export const OCI_TO_ARCH: Record<string, Arch> = { amd64: 'x86_64', arm64: 'aarch64', ppc64le: 'ppc64le', s390x: 's390x' };
export const ARCH_TO_OCI: Record<Arch, string> = { x86_64: 'amd64', aarch64: 'arm64', ppc64le: 'ppc64le', s390x: 's390x' };

export interface ListEntry {
  arch: Arch;
  digest: string;
  mediaType: string;
}

export type ParsedManifest =
  | { kind: 'list'; entries: ListEntry[]; other: string[] }
  | { kind: 'image'; configDigest: string };

export const digestOf = (body: Buffer): string => 'sha256:' + createHash('sha256').update(body).digest('hex');

/** Parses a manifest body of `mediaType` (the Content-Type; the body's own mediaType wins). */
export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  let json: { mediaType?: unknown; manifests?: unknown; config?: { digest?: unknown } };
  try {
    json = JSON.parse(body.toString('utf8')) as typeof json;
  } catch {
    throw new Error('the manifest is not JSON');
  }
  const type = typeof json.mediaType === 'string' ? json.mediaType : (contentType ?? '').split(';')[0]!.trim();
  if (LIST_TYPES.includes(type) || (type === '' && Array.isArray(json.manifests))) {
    if (!Array.isArray(json.manifests)) throw new Error('the manifest list has no manifests array');
    const entries: ListEntry[] = [];
    const other: string[] = [];
    for (const m of json.manifests as Array<{ digest?: unknown; mediaType?: unknown; platform?: { architecture?: unknown; os?: unknown; variant?: unknown } }>) {
      const os = m.platform?.os;
      const a = typeof m.platform?.architecture === 'string' ? m.platform.architecture : '';
      if (typeof m.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(m.digest)) continue;
      const arch = OCI_TO_ARCH[a];
      // arm64 may say variant v8; other variants (arm v7) are other arches.
      const variantOk = m.platform?.variant === undefined || (a === 'arm64' && m.platform.variant === 'v8');
      if (os === 'linux' && arch && variantOk && !entries.some((e) => e.arch === arch)) {
        entries.push({ arch, digest: m.digest, mediaType: typeof m.mediaType === 'string' ? m.mediaType : '' });
      } else if (os !== 'unknown') {
        other.push(`${String(os)}/${a}${m.platform?.variant ? `/${String(m.platform.variant)}` : ''}`);
      }
    }
    entries.sort((x, y) => ARCHES.indexOf(x.arch) - ARCHES.indexOf(y.arch));
    return { kind: 'list', entries, other };
  }
  if (MANIFEST_TYPES.includes(type) || (type === '' && json.config)) {
    const d = json.config?.digest;
    if (typeof d !== 'string') throw new Error('the image manifest names no config');
    return { kind: 'image', configDigest: d };
  }
  throw new Error(`unsupported manifest type '${type || 'none'}' (want an OCI index, a Docker manifest list or an image manifest)`);
}
