// The end-of-build summary: every image built (and published), and every arch that failed.

import { relative } from 'node:path';
import { smokeOf } from '../records/manifest.ts';
import type { ArchState, BuildState, SmokeRecord } from '../records/state.ts';

/** The SMOKE cell: the verdict, and what a failure under policy warn meant. */
export function smokeCell(r: SmokeRecord | undefined): string {
  if (!r) return '-';
  if (r.status === 'failed') return r.policy === 'warn' ? 'FAILED (warn)' : 'FAILED';
  return r.status === 'skipped' && /off/.test(r.reason ?? '') ? 'off' : r.status;
}
import { formatBytes, renderTable } from './table.ts';

export function renderSummary(state: BuildState, cwd: string): string {
  const arches = Object.values(state.arches).filter((a): a is ArchState => a !== undefined);
  const rows: string[][] = [];
  for (const a of arches) {
    for (const art of a.artifacts) {
      rows.push([a.arch, art.type, art.imageName, formatBytes(art.disk.size), art.disk.sha256.slice(0, 12), smokeCell(smokeOf(a.smoke, art.type)), relative(cwd, art.disk.path) || art.disk.path]);
    }
  }
  let text = `build ${state.buildId}: ${state.status}\n\n`;
  if (rows.length) text += renderTable(['ARCH', 'TYPE', 'IMAGE NAME', 'SIZE', 'SHA256', 'SMOKE', 'PATH'], rows);
  const published: string[][] = [];
  for (const a of arches) {
    for (const up of Object.values(a.uploads)) {
      for (const img of up.images) published.push([a.arch, img.target, img.location, img.imageName, img.imageId, img.existing ? 'existing' : 'new']);
      if (up.step === 'failed') published.push([a.arch, up.target, '-', '-', '-', `FAILED: ${up.error ?? ''}`]);
    }
  }
  if (published.length) text += '\n' + renderTable(['ARCH', 'TARGET', 'WHERE', 'IMAGE NAME', 'IMAGE ID', 'STATE'], published);
  const failed = arches.filter((a) => a.step === 'failed');
  if (failed.length) {
    text += '\nfailed:\n' + failed.map((a) => `  ${a.arch}: ${a.error ?? 'unknown error'}`).join('\n') + '\n';
  }
  return text;
}
