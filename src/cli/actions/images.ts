// `farm images`: what the farm has published, by target, newest first, with the build that made
// each image; read from the build records only (no cloud is asked).

import { resolve } from 'node:path';
import type { CommandContext } from 'citty';
import { FarmError } from '../../core/errors.ts';
import { publishedImages, type PublishedRecord } from '../../records/history.ts';
import { renderTable } from '../../ui/table.ts';
import type { imagesArgs } from '../commands/images.ts';
import { err, out } from '../io.ts';
import { loadFromArgs } from './args.ts';

/** 2026-11-21 10:15:00Z: sortable, and the same for every reader wherever they are. */
function when(iso: string | undefined): string {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-';
}

/** Grouped by target (in the order each target last published), newest first within a target. */
export function byTarget(records: PublishedRecord[]): PublishedRecord[] {
  const groups = new Map<string, PublishedRecord[]>();
  for (const r of records) {
    const g = groups.get(r.target);
    if (g) g.push(r);
    else groups.set(r.target, [r]);
  }
  return [...groups.values()].flat();
}

export function renderImages(records: PublishedRecord[]): string {
  const rows = records.map((r) => [r.target, r.kind, r.location, r.imageName, r.imageId, r.arch, r.buildId, when(r.at)]);
  // Images made from a registry's image say which (its arch's manifest digest).
  if (records.some((r) => r.sourceDigest)) {
    rows.forEach((row, i) => row.push(records[i]!.sourceDigest?.slice(0, 19) ?? '-'));
    return renderTable(['TARGET', 'KIND', 'WHERE', 'IMAGE NAME', 'IMAGE ID', 'ARCH', 'BUILD', 'WHEN', 'SOURCE'], rows);
  }
  return renderTable(['TARGET', 'KIND', 'WHERE', 'IMAGE NAME', 'IMAGE ID', 'ARCH', 'BUILD', 'WHEN'], rows);
}

export async function images({ args }: CommandContext<typeof imagesArgs>): Promise<void> {
  let limit = Infinity;
  if (args.limit !== undefined) {
    limit = Number(args.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new FarmError('USAGE', `--limit takes a positive whole number, not '${args.limit}'`);
  }
  if (args.remote) return (await import('./lifecycle.ts')).remoteImages(args, limit);
  // Only builds_dir is needed: local files the inventory names need not exist here.
  const loaded = await loadFromArgs(args, { checkFiles: false });
  const buildsDir = resolve(loaded.dir, loaded.inventory.settings.builds_dir);
  // A damaged or newer record cannot hide the others; it is named, so it does not go unnoticed.
  const skipped: string[] = [];
  const records = byTarget((await publishedImages(buildsDir, { onSkipped: (e) => skipped.push(`${e.message}\n  hint: ${e.hint}`) })).slice(0, limit));
  for (const s of skipped) err(`passed over a build record: ${s}`);
  if (args.json) {
    out(JSON.stringify(records, null, 2));
    return;
  }
  if (records.length === 0) {
    err(`no published images in ${buildsDir}: \`farm build -i ${args.inventory}\` builds and uploads to the targets of the inventory`);
    return;
  }
  out(renderImages(records));
}
