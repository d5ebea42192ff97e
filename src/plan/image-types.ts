// Which bib image types an arch builds: what its targets' kinds consume, unless the inventory
// says. How types split into builder runs is bib's business (workers/bib/layout.ts).

import type { ImageType } from '../core/image-types.ts';
import type { ArchConfig } from '../inventory/schema.ts';
import { kindFor, type Target } from '../targets.ts';

/** The bib type a target consumes. */
export function typeForTarget(target: Target): ImageType {
  return kindFor(target).imageType(target);
}

export const DEFAULT_TYPES: readonly ImageType[] = ['qcow2'];

/** An explicit type list wins; otherwise the union of what the targets need; otherwise qcow2. */
export function imageTypesFor(config: ArchConfig | undefined): ImageType[] {
  if (config?.types?.length) return [...new Set(config.types)];
  const fromTargets = [...new Set((config?.targets ?? []).map(typeForTarget))];
  return fromTargets.length ? fromTargets : [...DEFAULT_TYPES];
}
