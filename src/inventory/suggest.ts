// "Did you mean ...?" for inventory typos: the closest known word, and the names other tools give
// the four arches (Debian, Go and OCI say amd64/arm64; Fedora's kernel and the farm say x86_64/aarch64).

import { ARCHES, type Arch } from '../core/arch.ts';

const ARCH_ALIASES: Record<string, Arch> = {
  amd64: 'x86_64',
  x64: 'x86_64',
  x86: 'x86_64',
  x8664: 'x86_64',
  intel64: 'x86_64',
  arm64: 'aarch64',
  arm64v8: 'aarch64',
  armv8: 'aarch64',
  arm: 'aarch64',
  aarch: 'aarch64',
  ppc64: 'ppc64le',
  ppc64el: 'ppc64le',
  ppc: 'ppc64le',
  power: 'ppc64le',
  powerpc64le: 'ppc64le',
  power9: 'ppc64le',
  power10: 'ppc64le',
  s390: 's390x',
  systemz: 's390x',
  z: 's390x',
  zseries: 's390x',
};

/** Case, '-' and '_' differences are the most common slips; compare without them. */
const fold = (s: string) => s.toLowerCase().replace(/[-_.\s]/g, '');

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions ("regoin"). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate the user most likely meant, or undefined when nothing is close. */
export function closest(input: string, candidates: readonly string[]): string | undefined {
  const f = fold(input);
  if (f === '') return undefined;
  const same = candidates.find((c) => fold(c) === f);
  if (same) return same;
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const fc = fold(c);
    const dist = editDistance(f, fc);
    // Short words tolerate one slip, longer ones about one per three letters.
    if (dist <= Math.max(1, Math.floor(fc.length / 3)) && dist < bestScore) {
      best = c;
      bestScore = dist;
    }
  }
  if (best) return best;
  // A truncated name ("identity" for identity_file) is close enough when it is a real prefix.
  if (f.length >= 4) return candidates.find((c) => fold(c).startsWith(f));
  return undefined;
}

/** The farm's name for an arch spelled another way (arm64 → aarch64), or the closest by spelling. */
export function suggestArch(input: string): Arch | undefined {
  const f = fold(input);
  const alias = ARCH_ALIASES[f];
  if (alias) return alias;
  return closest(input, ARCHES) as Arch | undefined;
}
