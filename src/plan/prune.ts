// The prune planner: a pure function of the targets' listings, the inventory's retention policy
// and the clock, so any coordinator (an empty builds/ included) makes the same plan.
//
// Never touched: current images, permanent-tagged ones, and the newest `keep` builds of each arch
// and target. Phase one deprecates unused candidates and old released images (unused for
// `unused_days`, by the last launch where the target reports it, else by age); phase two deletes
// images deprecated for `delete_after_days`. Safety: no plan deletes every image of an arch on a
// target, nor more than `max_deletions` unless the caller raises the limit.

import type { RetentionPolicy } from '../inventory/lifecycle-schema.ts';
import { buildIdDate, isBuildId } from '../naming.ts';
import type { RemoteImage } from '../../uploaders/lifecycle.ts';

export type PruneAction = 'keep' | 'deprecate' | 'delete';

export interface PlannedImage {
  image: RemoteImage;
  action: PruneAction;
  reason: string;
}

export interface PrunePlan {
  items: PlannedImage[];
  /** Why the plan's deletions may not run as they are (more than the limit). */
  refused?: string;
}

const DAY_MS = 86_400_000;
const days = (ms: number) => Math.floor(ms / DAY_MS);
const day = (t: number) => new Date(t).toISOString().slice(0, 10);

function builtAt(i: RemoteImage): number {
  if (isBuildId(i.buildId)) return buildIdDate(i.buildId).getTime();
  return i.createdAt ? new Date(i.createdAt).getTime() : 0;
}

/** The group an image's `keep` and safety count in: one arch on one target. */
const groupOf = (i: RemoteImage) => `${i.target}\u0000${i.arch}`;

export function planPrune(images: readonly RemoteImage[], policy: RetentionPolicy, now: Date, opts: { maxDeletions?: number } = {}): PrunePlan {
  const t = now.getTime();
  const newest = new Map<string, Set<string>>();
  for (const [group, builds] of groupBuilds(images)) newest.set(group, new Set(builds.slice(0, policy.keep)));
  const items = images.map((image): PlannedImage => {
    const keep = (reason: string): PlannedImage => ({ image, action: 'keep', reason });
    if (image.leftover) {
      // A backing object whose image is gone: prune finishes what it began (it tags before it
      // removes); anything else is rollback's to remove (it may be an upload in progress).
      return image.deprecatedAt ? { image, action: 'delete', reason: 'left by an interrupted prune' } : keep('leftover of an upload or removal: farm rollback removes it');
    }
    if (image.current) return keep('current');
    if (image.permanent) return keep('permanent');
    if (newest.get(groupOf(image))?.has(image.buildId)) return keep(`among the newest ${policy.keep} of ${image.arch} on ${image.target}`);
    if (image.deprecatedAt) {
      const since = new Date(image.deprecatedAt).getTime();
      const due = since + policy.delete_after_days * DAY_MS;
      if (t >= due) return { image, action: 'delete', reason: `deprecated since ${day(since)}, over ${policy.delete_after_days} days` };
      return keep(`deprecated, deleted after ${day(due)}`);
    }
    const launched = image.lastLaunchedAt ? new Date(image.lastLaunchedAt).getTime() : undefined;
    const used = launched ?? builtAt(image);
    const idle = days(t - used);
    if (idle < policy.unused_days) return keep(launched ? `launched ${day(launched)}` : `${idle} days old`);
    const what = image.channel === 'candidate' ? 'candidate' : 'released, not current,';
    return { image, action: 'deprecate', reason: `${what} ${launched ? `not launched since ${day(launched)}` : `unused for ${idle} days`}` };
  });
  // Safety: an arch on a target keeps at least one image, whatever the policy says.
  for (const group of new Set(images.filter((i) => !i.leftover).map(groupOf))) {
    const members = items.filter((p) => !p.image.leftover && groupOf(p.image) === group);
    if (members.every((p) => p.action === 'delete')) {
      for (const p of members) Object.assign(p, { action: 'keep', reason: `would delete every image of ${p.image.arch} on ${p.image.target}` });
    }
  }
  const deletions = items.filter((p) => p.action === 'delete').length;
  const max = opts.maxDeletions ?? policy.max_deletions;
  return deletions > max ? { items, refused: `the plan deletes ${deletions} images, more than the limit of ${max}` } : { items };
}

/** Build ids per group, newest first. */
function groupBuilds(images: readonly RemoteImage[]): Map<string, string[]> {
  const out = new Map<string, Map<string, number>>();
  for (const i of images) {
    if (i.leftover) continue;
    const g = out.get(groupOf(i)) ?? new Map<string, number>();
    g.set(i.buildId, Math.max(g.get(i.buildId) ?? 0, builtAt(i)));
    out.set(groupOf(i), g);
  }
  return new Map([...out].map(([group, builds]) => [group, [...builds].sort((a, b) => b[1] - a[1] || b[0].localeCompare(a[0])).map(([id]) => id)]));
}
