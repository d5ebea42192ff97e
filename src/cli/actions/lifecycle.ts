// `farm images --remote`, `farm rollback`: the image lifecycle commands, from the targets' own
// listings (src/pipeline/lifecycle.ts), never from the build records.

import type { CommandContext } from 'citty';
import { FarmError } from '../../core/errors.ts';
import { isBuildId } from '../../naming.ts';
import { listRemote, plainImage, removeAll, type Held } from '../../pipeline/lifecycle.ts';
import { createUploader } from '../../targets.ts';
import { renderTable } from '../../ui/table.ts';
import type { RemoteImage } from '../../../uploaders/lifecycle.ts';
import type { rollbackArgs } from '../commands/rollback.ts';
import type { releaseArgs } from '../commands/release.ts';
import { releaseBuild } from '../../pipeline/release.ts';
import { checkSelection } from '../../pipeline/upload-stage.ts';
import { err, io, out } from '../io.ts';
import { archListArg, listArg, loadFromArgs } from './args.ts';

const DAY_MS = 86_400_000;

function age(iso: string | undefined, now: number): string {
  if (!iso) return '-';
  const days = (now - new Date(iso).getTime()) / DAY_MS;
  return days < 1 ? `${Math.max(0, Math.round(days * 24))}h` : `${Math.floor(days)}d`;
}

export function renderRemote(images: readonly RemoteImage[], now = Date.now()): string {
  const rows = images.map((i) => [
    i.target,
    i.location,
    i.imageName,
    i.imageId,
    i.arch,
    i.buildId,
    i.leftover ? 'leftover' : i.channel,
    i.current ? 'yes' : '',
    age(i.createdAt, now),
    i.lastLaunchedAt ? i.lastLaunchedAt.slice(0, 10) : '-',
    i.deprecatedAt ? i.deprecatedAt.slice(0, 10) : '',
  ]);
  return renderTable(['TARGET', 'WHERE', 'IMAGE NAME', 'IMAGE ID', 'ARCH', 'BUILD', 'CHANNEL', 'CURRENT', 'AGE', 'LAST LAUNCH', 'DEPRECATED'], rows);
}

async function listing(args: { inventory?: string }) {
  const { env, signal } = io();
  const loaded = await loadFromArgs(args);
  const list = await listRemote(loaded, {}, (target, name) => createUploader(target, name, env), signal);
  for (const f of list.failures) err(`could not list ${f}`);
  return { loaded, list };
}

export async function remoteImages(args: { inventory?: string; json?: boolean }, limit: number): Promise<void> {
  const { list } = await listing(args);
  const images = list.images.slice(0, limit).map(plainImage);
  if (list.failures.length) io().exitCode = 1;
  if (args.json) return out(JSON.stringify(images, null, 2));
  if (images.length === 0) return err('the targets hold no images of this inventory');
  out(renderRemote(images));
}

/** Why an image may not go without --force, or undefined. */
function protectedBy(i: RemoteImage): string | undefined {
  if (i.leftover) return undefined;
  if (i.current) return 'current';
  if (i.channel === 'released') return 'released';
  return undefined;
}

export async function rollback({ args }: CommandContext<typeof rollbackArgs>): Promise<void> {
  if (!isBuildId(args.build)) throw new FarmError('USAGE', `'${args.build}' is not a build id (e.g. 20261121t101500z)`);
  const { signal } = io();
  const { list } = await listing(args);
  if (list.failures.length) {
    // A target that cannot be listed may hold images of the build: say so, and remove nothing
    // there; the rest goes, and a rerun finishes.
    io().exitCode = 1;
  }
  const mine: Held[] = list.images.filter((i) => i.buildId === args.build);
  const guarded = mine.filter((i) => protectedBy(i));
  if (guarded.length && !args.force) {
    throw new FarmError('USAGE', `build ${args.build} has ${guarded.length} released or current image(s); nothing was removed:\n  ${guarded.map((i) => `${i.target} ${i.location} ${i.imageId} (${protectedBy(i)})`).join('\n  ')}`, {
      hint: 'release another build first (farm release), or remove them anyway with --force',
    });
  }
  const results = await removeAll(mine, signal);
  const failed = results.filter((r) => r.error);
  if (failed.length) io().exitCode = 1;
  if (args.json) {
    out(JSON.stringify({ build: args.build, removed: results.filter((r) => !r.error), failed, unlisted: list.failures }, null, 2));
    return;
  }
  if (results.length === 0) {
    out(`nothing of build ${args.build} on ${list.failures.length ? 'the targets that answered' : 'any target'}`);
    return;
  }
  const rows = results.flatMap((r) =>
    r.error ? [[r.image.target, r.image.location, r.image.imageName, `failed: ${r.error}`]] : (r.removed.length ? r.removed : ['(gone already)']).map((what) => [r.image.target, r.image.location, r.image.imageName, what]),
  );
  out(renderTable(['TARGET', 'WHERE', 'IMAGE NAME', 'REMOVED'], rows));
}

export async function release({ args }: CommandContext<typeof releaseArgs>): Promise<void> {
  if (!isBuildId(args.build)) throw new FarmError('USAGE', `'${args.build}' is not a build id (e.g. 20261121t101500z)`);
  const { env, signal } = io();
  const loaded = await loadFromArgs(args);
  const targets = { only: listArg(args.only), skip: listArg(args.skip) };
  checkSelection(loaded, targets);
  const outcome = await releaseBuild(loaded, args.build, {
    arches: args.arch ? archListArg(args.arch) : undefined,
    targets,
    factory: (target, name) => createUploader(target, name, env),
    env,
    signal,
    log: err,
  });
  for (const f of outcome.failures) err(f);
  if (outcome.hook?.error) err(outcome.hook.error);
  if (outcome.failures.length || outcome.hook?.error) io().exitCode = 1;
  if (args.json) return out(JSON.stringify(outcome, null, 2));
  const rows = [
    ...outcome.released.map((i) => [i.target, i.location, i.arch, i.imageName, i.imageId, 'released, current']),
    ...outcome.unmarked.map((i) => [i.target, i.location, i.arch, i.imageName, i.imageId, 'no longer current']),
  ];
  out(renderTable(['TARGET', 'WHERE', 'ARCH', 'IMAGE NAME', 'IMAGE ID', 'NOW'], rows));
}
