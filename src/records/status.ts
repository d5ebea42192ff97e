// A build's overall status from its arches and uploads.

import type { ArchState, BuildState } from './state.ts';

export function overallStatus(state: BuildState): BuildState['status'] {
  const arches = Object.values(state.arches).filter((a): a is ArchState => a !== undefined);
  const ok = (a: ArchState) => a.step === 'fetched' && Object.values(a.uploads).every((u) => u.step === 'uploaded');
  if (arches.length > 0 && arches.every(ok)) return 'succeeded';
  if (arches.some(ok) || arches.some((a) => a.step === 'fetched')) return 'partial';
  return 'failed';
}
