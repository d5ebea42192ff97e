// The fake's account state as saved in a state file (see ../state-file.ts): every region's
// snapshots, images, import tasks and CopyImage tokens. Snapshot data stays in the data directory.

import type { FakeState, Image, ImportTask, Snapshot } from './state.ts';

export interface SavedAwsState {
  version: 1;
  regions: Record<string, { snapshots: Snapshot[]; images: Image[]; importTasks: ImportTask[]; copyTokens: [string, string][] }>;
}

export function saveAwsState(state: FakeState): SavedAwsState {
  const regions: SavedAwsState['regions'] = {};
  for (const r of state.regions.values()) {
    regions[r.name] = {
      snapshots: [...r.snapshots.values()],
      images: [...r.images.values()],
      importTasks: [...r.importTasks.values()],
      copyTokens: [...r.copyTokens],
    };
  }
  return { version: 1, regions };
}

/**
 * Puts saved resources back into the fake's regions (regions no longer served are skipped).
 * Returns the import tasks whose object read was cut short by the restart: the caller reads again.
 */
export function restoreAwsState(state: FakeState, saved: SavedAwsState): ImportTask[] {
  if (saved.version !== 1) throw new Error(`unknown AWS fake state version ${String(saved.version)}`);
  const unread: ImportTask[] = [];
  for (const [name, s] of Object.entries(saved.regions)) {
    const r = state.regions.get(name);
    if (!r) continue;
    for (const x of s.snapshots) r.snapshots.set(x.id, x);
    for (const x of s.images) r.images.set(x.id, x);
    for (const x of s.importTasks) {
      r.importTasks.set(x.id, x);
      if (x.status === 'active' && !x.read) unread.push(x);
    }
    for (const [token, id] of s.copyTokens) r.copyTokens.set(token, id);
  }
  return unread;
}
