// Architecture names as the farm, the kernel (`uname -m`), OCI and the clouds spell them.

export const ARCHES = ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const;
export type Arch = (typeof ARCHES)[number];

export function isArch(value: string): value is Arch {
  return (ARCHES as readonly string[]).includes(value);
}

/** The name `uname -m` prints on a native host of each arch. */
export const UNAME_MACHINE: Record<Arch, string> = {
  x86_64: 'x86_64',
  aarch64: 'aarch64',
  ppc64le: 'ppc64le',
  s390x: 's390x',
};


/** Parses `--arch all` or `--arch x86_64,s390x`. */
export function parseArchList(spec: string): Arch[] {
  if (spec.trim() === 'all') return [...ARCHES];
  const out: Arch[] = [];
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!isArch(part)) {
      throw new Error(`unknown arch '${part}': use one of ${ARCHES.join(', ')} or 'all'`);
    }
    if (!out.includes(part)) out.push(part);
  }
  return out;
}
