// An inventory given inline as an object, parsed by the real schema and placed at /inv/farm.yaml
// (nothing is read from disk): for the tests of the pipeline and the records.

import { inventorySchema, type LoadedInventory } from '../../src/inventory/schema.ts';

/** `arches` and `workers` as the inventory has them; source is a Containerfile beside it. */
export function inlineInventory(doc: { workers: unknown[]; arches?: unknown; [key: string]: unknown }): LoadedInventory {
  return {
    file: '/inv/farm.yaml',
    dir: '/inv',
    inventory: inventorySchema.parse({ version: 1, source: { containerfile: 'Containerfile' }, ...doc }),
  };
}
