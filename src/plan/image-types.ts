// Which bib image types an arch builds, and how they are split into builder runs.

import type { ArchConfig, ImageType, Target } from '../inventory/schema.ts';
import { TYPE_OUTPUT_PATH } from '../../workers/artifact.ts';

/** The bib type a target consumes. */
export function typeForTarget(target: Target): ImageType {
  switch (target.kind) {
    case 'aws':
      return 'ami'; // AWS takes the raw disk that bib's ami type writes
    case 'ibmcloud':
      return 'qcow2';
    case 'libvirt':
    case 'openstack':
      return target.image_type;
  }
}

export const DEFAULT_TYPES: readonly ImageType[] = ['qcow2'];

/** An explicit type list wins; otherwise the union of what the targets need; otherwise qcow2. */
export function imageTypesFor(config: ArchConfig | undefined): ImageType[] {
  if (config?.types?.length) return [...new Set(config.types)];
  const fromTargets = [...new Set((config?.targets ?? []).map(typeForTarget))];
  return fromTargets.length ? fromTargets : [...DEFAULT_TYPES];
}

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
