// `farm serve`'s scheduled chores under a controlled clock: prune (service.prune: { schedule,
// apply }) and the pools sweep (service.sweep, or every 10 minutes with pools), with the work
// stood in; what each did goes to the log, the service state and the page's snapshot.

import { describe, expect, it, vi } from 'vitest';
import { loadInventory } from '../../src/inventory/load.ts';
import { serviceSchema } from '../../src/inventory/schema.ts';
import type { PruneRun } from '../../src/pipeline/prune-run.ts';
import type { SweepItem } from '../../src/pipeline/sweep.ts';
import { Chores, pruneSummary, sweepSummary } from '../../src/service/chores.ts';
import { ManualClock } from '../../src/service/clock.ts';
import { DEFAULT_SWEEP, serviceSettings } from '../../src/service/config.ts';
import { ServiceStore } from '../../src/service/store.ts';
import { serveInventory } from '../support/serve.ts';
import type { RemoteImage } from '../../uploaders/lifecycle.ts';

const HOUR = 3_600_000;
const img = (buildId: string): RemoteImage => ({
  target: 'glance', kind: 'openstack', location: 'RegionOne', imageId: `img-${buildId}`, imageName: buildId, buildId, arch: 's390x', channel: 'candidate', current: false, permanent: false, parts: [],
});
const run = (over: Partial<PruneRun>): PruneRun => ({
  policy: { keep: 3, unused_days: 30, delete_after_days: 30 } as PruneRun['policy'], now: '2025-01-01T00:00:00.000Z', plan: [], dryRun: false, deprecated: [], removed: [], failures: [], ...over,
});
const item = (over: Partial<SweepItem>): SweepItem => ({ build: 'b', pool: 'p', provider: 'resalloc', id: '7', ageSeconds: 10, reason: 'past its lifetime', outcome: 'given back', ...over });

async function setup(service: string) {
  const path = await serveInventory(service);
  const loaded = await loadInventory(path);
  const settings = serviceSettings(loaded);
  const store = await ServiceStore.open(settings.stateDir);
  return { path, loaded, settings, store };
}

describe('service.prune and service.sweep in the schema', () => {
  it('takes a cron schedule and apply (default false); refuses a bad pattern and unknown fields', () => {
    expect(serviceSchema.parse({ prune: { schedule: '0 4 * * *' } }).prune).toEqual({ schedule: '0 4 * * *', apply: false });
    expect(serviceSchema.parse({ sweep: {} }).sweep).toEqual({ schedule: DEFAULT_SWEEP });
    expect(serviceSchema.safeParse({ prune: { schedule: 'every day' } }).success).toBe(false);
    expect(serviceSchema.safeParse({ prune: { schedule: '0 4 * * *', yes: true } }).success).toBe(false);
  });

  it('sweeps every 10 minutes by default only when the inventory has pools', async () => {
    const { loaded } = await setup('  source: { watch: false }');
    expect(serviceSettings(loaded).sweep).toBeUndefined();
    const withPools = { ...loaded, inventory: { ...loaded.inventory, pools: [{} as (typeof loaded.inventory.pools)[number]] } };
    expect(serviceSettings(withPools).sweep).toEqual({ schedule: DEFAULT_SWEEP });
  });
});

describe('the chores on their schedules (controlled clock)', () => {
  it('prunes at the scheduled time with apply as configured, and reports it in the log, state and view', async () => {
    const { path, settings, store } = await setup('  source: { watch: false }\n  prune: { schedule: "0 4 * * *", apply: true }');
    const clock = new ManualClock(new Date(2025, 0, 1, 0, 0, 0).getTime());
    const lines: string[] = [];
    const calls: { apply: boolean; now: number }[] = [];
    const chores = new Chores({
      inventoryPath: path, settings, store, clock, env: {}, log: (l) => lines.push(l),
      prune: async (_l, apply, now) => {
        calls.push({ apply, now: now.getTime() });
        return run({ plan: [{ image: img('b1'), action: 'delete', reason: 'deprecated 40 d ago' }, { image: img('b2'), action: 'keep', reason: 'newest' }] as PruneRun['plan'], removed: [{ image: img('b1'), removed: ['image'] }] as PruneRun['removed'] });
      },
    });
    await chores.start();
    expect(lines).toEqual([`prune schedule "0 4 * * *": next at ${new Date(2025, 0, 1, 4, 0, 0).toISOString()}`]);
    expect(chores.view().sweep).toBeUndefined();
    await clock.advance(3 * HOUR);
    expect(calls).toEqual([]);
    await clock.advance(HOUR);
    await vi.waitFor(() => expect(lines).toContain('prune (scheduled): deprecated 0, deleted 1'));
    expect(calls).toEqual([{ apply: true, now: new Date(2025, 0, 1, 4, 0, 0).getTime() }]);
    const view = chores.view().prune!;
    expect(view).toMatchObject({ pattern: '0 4 * * *', apply: true, running: false, last: { ok: true, summary: 'deprecated 0, deleted 1', at: new Date(2025, 0, 1, 4).toISOString() } });
    expect(view.next).toBe(new Date(2025, 0, 2, 4, 0, 0).toISOString());
    expect((await ServiceStore.open(settings.stateDir)).current.chores?.prune?.last?.summary).toBe('deprecated 0, deleted 1');
    await chores.stop();
  });

  it('a prune missed while stopped runs once at start; a failure is reported, not thrown', async () => {
    const { path, settings, store } = await setup('  source: { watch: false }\n  prune: { schedule: "0 4 * * *" }');
    await store.update((s) => {
      s.chores = { prune: { lastFiredAt: new Date(2025, 0, 1, 5).toISOString() } };
    });
    const clock = new ManualClock(new Date(2025, 0, 3, 0, 0, 0).getTime());
    const lines: string[] = [];
    let calls = 0;
    const chores = new Chores({
      inventoryPath: path, settings, store, clock, env: {}, log: (l) => lines.push(l),
      prune: async () => {
        calls++;
        throw new Error('could not list every target, so nothing is planned');
      },
    });
    await chores.start();
    await vi.waitFor(() => expect(lines).toContain('prune (scheduled): failed: could not list every target, so nothing is planned'));
    expect(calls).toBe(1);
    await vi.waitFor(() => expect(chores.view().prune!.last).toMatchObject({ ok: false }));
    await chores.stop();
  });

  it('sweeps on its schedule and says what it gave back; a second run while one is going is skipped', async () => {
    const { path, settings, store } = await setup('  source: { watch: false }\n  sweep: { schedule: "*/10 * * * *" }');
    const clock = new ManualClock(new Date(2025, 0, 1, 0, 0, 0).getTime());
    const lines: string[] = [];
    let open: () => void = () => undefined;
    let calls = 0;
    const chores = new Chores({
      inventoryPath: path, settings, store, clock, env: {}, log: (l) => lines.push(l),
      sweep: async () => {
        calls++;
        await new Promise<void>((r) => (open = r));
        return [item({}), item({ id: '8', reason: 'in use', outcome: 'left' })];
      },
    });
    await chores.start();
    await clock.advance(10 * 60_000);
    await vi.waitFor(() => expect(calls).toBe(1));
    expect(chores.view().sweep!.running).toBe(true);
    await clock.advance(10 * 60_000);
    await vi.waitFor(() => expect(lines).toContain('sweep: the previous run is still going; this one is skipped'));
    open();
    await vi.waitFor(() => expect(lines).toContain('sweep (scheduled): gave back 1: p/7 (past its lifetime); left 1'));
    expect(calls).toBe(1);
    await chores.stop();
  });
});

describe('chore summaries', () => {
  it('say what a prune planned, refused, or did', () => {
    const plan = [{ image: img('a'), action: 'deprecate', reason: 'unused' }] as PruneRun['plan'];
    expect(pruneSummary(run({ plan, dryRun: true }))).toEqual({ ok: true, summary: 'dry run (service.prune.apply is false): planned: deprecate 1, delete 0, of 1 image(s) listed' });
    expect(pruneSummary(run({ plan, refused: '5 deletions is more than max_deletions 3' })).summary).toMatch(/^refused: 5 deletions .*; nothing was done/);
    expect(pruneSummary(run({ plan, deprecated: ['x'], failures: ['delete y: boom'] }))).toEqual({ ok: false, summary: 'deprecated 1, deleted 0; 1 failed: delete y: boom' });
  });
  it('say what a sweep did', () => {
    expect(sweepSummary([])).toEqual({ ok: true, summary: 'no pool VMs left by earlier runs' });
    expect(sweepSummary([item({ outcome: 'failed', error: 'ticket-close exited 1' })])).toEqual({ ok: false, summary: 'gave back 0; left 0; 1 failed: p/7: ticket-close exited 1' });
  });
});
