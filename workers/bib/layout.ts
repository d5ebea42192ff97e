// bib's output layout and how the farm splits image types into bib runs: knowledge of
// bootc-image-builder, so it lives with the builder.

import type { ImageType } from '../../src/core/image-types.ts';

/** Where bib writes each type's disk under /output. */
export const TYPE_OUTPUT_PATH: Record<ImageType, string> = {
  ami: 'image/disk.raw',
  raw: 'image/disk.raw',
  qcow2: 'qcow2/disk.qcow2',
  vmdk: 'vmdk/disk.vmdk',
  vhd: 'vpc/disk.vhd',
  gce: 'gce/image.tar.gz',
};

/**
 * Groups types into bib runs so that no two types of one run write the same output path
 * (ami and raw both write image/disk.raw: one run would lose the other's disk).
 */
export function builderRuns(types: readonly ImageType[]): ImageType[][] {
  const runs: ImageType[][] = [];
  for (const type of types) {
    const run = runs.find((r) => r.every((t) => TYPE_OUTPUT_PATH[t] !== TYPE_OUTPUT_PATH[type]));
    if (run) run.push(type);
    else runs.push([type]);
  }
  return runs;
}
