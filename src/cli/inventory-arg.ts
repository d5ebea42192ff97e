// Shared CLI arguments and helpers for loading the inventory.

import { resolve } from 'node:path';
import { loadInventory } from '../inventory/load.ts';
import type { LoadedInventory } from '../inventory/schema.ts';
import { io } from './io.ts';

export const inventoryArg = {
  inventory: {
    type: 'string' as const,
    alias: 'i',
    default: 'inventory/farm.yaml',
    description: 'Inventory file (YAML)',
    valueHint: 'FILE',
  },
};

export function loadFromArgs(args: { inventory?: string }): Promise<LoadedInventory> {
  const path = resolve(io().cwd, args.inventory ?? 'inventory/farm.yaml');
  return loadInventory(path);
}
