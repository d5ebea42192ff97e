// `farm release BUILD_ID` (and `release: { auto: true }` after a successful build): a build's
// candidate images get the target's sharing settings, the released channel and the "current"
// mark, which leaves the previous current image of each arch and target; then the inventory's
// release hook is told the released images. Everything is read from the targets' own listings.

import type { Arch } from '../core/arch.ts';
import { FarmError, errorMessage } from '../core/errors.ts';
import type { LoadedInventory } from '../inventory/schema.ts';
import { notifyEnv, postWebhook, runNotifyCommand } from '../service/notify.ts';
import type { RemoteImage } from '../../uploaders/lifecycle.ts';
import { listRemote, plainImage, type Held } from './lifecycle.ts';
import type { TargetSelection, UploaderFactory } from './upload-stage.ts';

export interface ReleaseOptions {
  arches?: Arch[] | undefined;
  targets?: TargetSelection;
  factory: UploaderFactory;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  log?: (line: string) => void;
}

export interface ReleaseOutcome {
  build: string;
  released: RemoteImage[];
  /** Images that were current before and are not now. */
  unmarked: RemoteImage[];
  failures: string[];
  hook?: { command?: number; webhook?: number; error?: string };
}

export async function releaseBuild(loaded: LoadedInventory, build: string, opts: ReleaseOptions): Promise<ReleaseOutcome> {
  const list = await listRemote(loaded, opts.targets ?? {}, opts.factory, opts.signal);
  const failures = list.failures.map((f) => `could not list ${f}`);
  const wanted = (i: Held) => !i.leftover && (!opts.arches || opts.arches.includes(i.arch as Arch));
  const mine = list.images.filter((i) => i.buildId === build && wanted(i));
  if (mine.length === 0) {
    throw new FarmError('USAGE', `no images of build ${build} on the targets${failures.length ? ' that answered' : ''}`, {
      hint: 'farm images --remote lists what the targets hold',
    });
  }
  const released: RemoteImage[] = [];
  const unmarked: RemoteImage[] = [];
  // The new mark first, then the old one goes: an arch and target never has no current image.
  for (const i of mine) {
    try {
      await i.via.markImage!(plainImage(i), { share: true, channel: 'released', current: true }, opts.signal);
      released.push({ ...plainImage(i), channel: 'released', current: true });
    } catch (err) {
      failures.push(`${i.target} ${i.location} ${i.imageId}: ${errorMessage(err)}`);
    }
  }
  const promoted = new Set(released.map((i) => `${i.target}\u0000${i.arch}`));
  for (const prev of list.images) {
    if (!prev.current || prev.buildId === build || !promoted.has(`${prev.target}\u0000${prev.arch}`)) continue;
    try {
      await prev.via.markImage!(plainImage(prev), { share: false, channel: prev.channel, current: false }, opts.signal);
      unmarked.push({ ...plainImage(prev), current: false });
    } catch (err) {
      failures.push(`${prev.target} ${prev.location} ${prev.imageId} (previous current): ${errorMessage(err)}`);
    }
  }
  const outcome: ReleaseOutcome = { build, released, unmarked, failures };
  const hook = loaded.inventory.release?.hook;
  if (hook && released.length) outcome.hook = await runHook(hook, { build, released, unmarked }, opts);
  return outcome;
}

async function runHook(
  hook: NonNullable<NonNullable<LoadedInventory['inventory']['release']>['hook']>,
  payload: { build: string; released: RemoteImage[]; unmarked: RemoteImage[] },
  opts: ReleaseOptions,
): Promise<NonNullable<ReleaseOutcome['hook']>> {
  const out: NonNullable<ReleaseOutcome['hook']> = {};
  const body = { event: 'release', ...payload };
  try {
    if (hook.command) {
      out.command = await runNotifyCommand(hook.command, body, { timeoutMs: hook.timeout_s * 1000, env: notifyEnv(opts.env, hook.env), ...(opts.log ? { log: opts.log } : {}) });
      if (out.command !== 0) out.error = `release hook ${hook.command[0]} exited ${out.command}`;
    }
    if (hook.webhook) out.webhook = await postWebhook(hook.webhook, body, { timeoutMs: hook.timeout_s * 1000 });
  } catch (err) {
    out.error = errorMessage(err);
  }
  return out;
}
