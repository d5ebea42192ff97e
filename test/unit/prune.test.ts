// The prune planner: a pure function of listings, policy and clock.

import { describe, expect, it } from 'vitest';
import { planPrune } from '../../src/plan/prune.ts';
import type { RemoteImage } from '../../uploaders/lifecycle.ts';

const NOW = new Date('2026-12-06T12:00:00Z');
const POLICY = { keep: 2, unused_days: 30, delete_after_days: 30, max_deletions: 50 };
const DAY = 86_400_000;

/** An image of a build made `age` days before NOW. */
function img(age: number, more: Partial<RemoteImage> = {}): RemoteImage {
  const d = new Date(NOW.getTime() - age * DAY);
  const p = (n: number) => String(n).padStart(2, '0');
  const buildId = `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}t${p(d.getUTCHours())}0000z`;
  return {
    target: 'aws-us-east-1', kind: 'aws', location: 'us-east-1', imageId: `ami-${age}`, imageName: `n-${age}`, buildId, arch: 'x86_64',
    channel: 'candidate', current: false, permanent: false, createdAt: d.toISOString(), parts: [], ...more,
  };
}

const actions = (images: RemoteImage[], policy = POLICY, max?: number) =>
  Object.fromEntries(planPrune(images, policy, NOW, max === undefined ? {} : { maxDeletions: max }).items.map((p) => [p.image.imageId, p.action]));

describe('planPrune', () => {
  it('keeps the newest per arch and target, current and permanent; deprecates the unused; deletes the long deprecated', () => {
    const images = [
      img(1),
      img(5),
      img(40), // unused candidate: deprecate
      img(50, { channel: 'released', current: true }), // current: never
      img(60, { permanent: true }),
      img(70, { deprecatedAt: new Date(NOW.getTime() - 31 * DAY).toISOString() }), // deleted
      img(80, { deprecatedAt: new Date(NOW.getTime() - 10 * DAY).toISOString() }), // not yet
      img(90, { lastLaunchedAt: new Date(NOW.getTime() - 3 * DAY).toISOString() }), // in use
      img(100, { channel: 'released' }),
    ];
    expect(actions(images)).toEqual({
      'ami-1': 'keep', 'ami-5': 'keep', 'ami-40': 'deprecate', 'ami-50': 'keep', 'ami-60': 'keep',
      'ami-70': 'delete', 'ami-80': 'keep', 'ami-90': 'keep', 'ami-100': 'deprecate',
    });
  });

  it('counts keep per arch and target, and per build across regions', () => {
    const images = [img(40), img(40, { location: 'us-west-2', imageId: 'ami-40w' }), img(50), img(45, { arch: 'aarch64', imageId: 'ami-45a' })];
    // Newest 2 builds of x86_64 (40 in both regions, 50) and the one aarch64 build: all kept.
    expect(Object.values(actions(images)).every((a) => a === 'keep')).toBe(true);
    expect(actions(images, { ...POLICY, keep: 1 })['ami-50']).toBe('deprecate');
  });

  it('never deletes every image of an arch on a target, and refuses more deletions than the limit', () => {
    const gone = (age: number) => img(age, { deprecatedAt: new Date(NOW.getTime() - 40 * DAY).toISOString() });
    const all = [gone(100), gone(110)];
    const plan = planPrune(all, { ...POLICY, keep: 1 }, NOW);
    // Both deprecated long ago: the newest stays all the same, so the arch keeps an image.
    expect(plan.items.map((p) => p.action)).toEqual(['keep', 'delete']);
    expect(plan.items[0]!.reason).toMatch(/newest 1/);
    const many = [img(1), ...Array.from({ length: 5 }, (_, i) => gone(100 + i))];
    const limited = planPrune(many, { ...POLICY, keep: 1 }, NOW, { maxDeletions: 3 });
    expect(limited.items.filter((p) => p.action === 'delete').length).toBe(5);
    expect(limited.refused).toMatch(/5 images, more than the limit of 3/);
    expect(planPrune(many, { ...POLICY, keep: 1 }, NOW).refused).toBeUndefined();
  });

  it('finishes what an interrupted prune left, and leaves other leftovers to rollback', () => {
    const images = [img(1), img(70, { leftover: true, deprecatedAt: NOW.toISOString(), imageId: 'snap-1' }), img(0, { leftover: true, imageId: 'snap-2' })];
    expect(actions(images)).toEqual({ 'ami-1': 'keep', 'snap-1': 'delete', 'snap-2': 'keep' });
  });

  it('plans the same from the same listings whatever their order (any coordinator)', () => {
    const images = [img(1), img(40), img(70, { deprecatedAt: new Date(NOW.getTime() - 40 * DAY).toISOString() }), img(5)];
    const a = actions(images);
    expect(actions([...images].reverse())).toEqual(a);
  });
});
