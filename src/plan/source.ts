// What a build sends from the coordinator, resolved from the inventory in one place: the build
// key digests it and the build sends it, so the two can never disagree on the context.

import { resolve } from 'node:path';
import type { LoadedInventory } from '../inventory/schema.ts';
import type { ImageSourceSpec } from '../registry/resolve.ts';

export interface BuildSource {
  contextDir: string;
  containerfile: string;
  buildArgs: Record<string, string>;
  /** Paths inside the context that are never sent. */
  exclude: string[];
}

/** The prebuilt image an image source pulls (source.image), or undefined for a Containerfile. */
export function imageSpec(loaded: LoadedInventory): ImageSourceSpec | undefined {
  const s = loaded.inventory.source;
  return s.image ? { image: s.image, tls_verify: s.tls_verify ?? true } : undefined;
}

/** The Containerfile source (for an image source: unused, the paths are the inventory's dir). */
export function buildSource(loaded: LoadedInventory): BuildSource {
  const inv = loaded.inventory;
  return {
    contextDir: resolve(loaded.dir, inv.source.context),
    containerfile: resolve(loaded.dir, inv.source.containerfile ?? ''),
    buildArgs: inv.source.build_args,
    // The farm's records change with every build and hold its earlier disk images: never source.
    exclude: [resolve(loaded.dir, inv.settings.builds_dir)],
  };
}
