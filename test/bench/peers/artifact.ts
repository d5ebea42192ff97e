// The Artifact the uploaders get for the benchmark disk, as the fetch stage would hand it over.

import type { Arch } from '../../../src/core/arch.ts';
import type { Artifact } from '../../../src/core/artifact.ts';
import type { BenchDisk } from '../../support/bench-disk.ts';

export function benchArtifact(disk: BenchDisk, imageName: string, arch: Arch = 'x86_64'): Artifact {
  return {
    buildId: 'bench',
    arch,
    type: 'raw',
    imageName,
    disk: { path: disk.path, name: 'image/disk.raw', size: disk.apparent, sha256: '', format: 'raw' },
    extra: [],
    worker: 'bench',
    builtAt: new Date().toISOString(),
  };
}
