// Turning parsed options into what the commands work with.

import { resolve } from 'node:path';
import { parseArchList, type Arch } from '../../core/arch.ts';
import { FarmError } from '../../core/errors.ts';
import { loadInventory, type LoadOptions } from '../../inventory/load.ts';
import type { LoadedInventory } from '../../inventory/schema.ts';
import { inventoryArches } from '../../plan/plan.ts';
import { io } from '../io.ts';

export function loadFromArgs(args: { inventory?: string }, options?: LoadOptions): Promise<LoadedInventory> {
  return loadInventory(resolve(io().cwd, args.inventory ?? 'inventory/farm.yaml'), options);
}

/** `--only a,b` → ['a', 'b']; nothing given, or only commas, is no selection. */
export function listArg(value: string | undefined): string[] | undefined {
  const items = value?.split(',').map((s) => s.trim()).filter(Boolean);
  return items?.length ? items : undefined;
}

/** `--arch x86_64,s390x` as arches; unknown names are a usage error. */
export function archListArg(spec: string): Arch[] {
  try {
    return parseArchList(spec);
  } catch (err) {
    throw new FarmError('USAGE', `--arch: ${(err as Error).message}`);
  }
}

/** `--arch all` is every arch the inventory has workers for. */
export function inventoryArchesArg(spec: string, loaded: LoadedInventory): Arch[] {
  return spec.trim() === 'all' ? inventoryArches(loaded) : archListArg(spec);
}
