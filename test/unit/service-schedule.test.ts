import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/service/clock.ts';
import { CronTrigger, InactivityTrigger } from '../../src/service/schedule.ts';
import { ServiceStore } from '../../src/service/store.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

async function store(): Promise<{ store: ServiceStore; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'farm-sched-'));
  return { store: await ServiceStore.open(dir), dir };
}

describe('cron schedule under a controlled clock', () => {
  it('fires at each scheduled time and remembers when', async () => {
    const { store: s, dir } = await store();
    // Wednesday 2025-01-01 00:00 local time; "0 3 * * 0" is Sundays at 03:00.
    const clock = new ManualClock(new Date(2025, 0, 1, 0, 0, 0).getTime());
    const fired: number[] = [];
    const cron = new CronTrigger({ clock, pattern: '0 3 * * 0', store: s, fire: () => fired.push(clock.now()), log: () => undefined });
    await cron.start();
    expect(fired).toEqual([]); // a first start counts from now
    expect(cron.next).toBe(new Date(2025, 0, 5, 3, 0, 0).getTime());

    await clock.advance(4 * DAY + 2 * HOUR + 59 * 60_000); // Sunday 02:59
    expect(fired).toEqual([]);
    await clock.advance(60_000); // 03:00
    await vi.waitFor(() => expect(fired).toEqual([new Date(2025, 0, 5, 3, 0, 0).getTime()]));
    await clock.advance(7 * DAY);
    await vi.waitFor(() => expect(fired).toHaveLength(2));
    expect(fired[1]).toBe(new Date(2025, 0, 12, 3, 0, 0).getTime());
    await vi.waitFor(async () => expect((await ServiceStore.open(dir)).current.schedule.lastFiredAt).toBe(new Date(fired[1]!).toISOString()));
    cron.stop();
  });

  it('a time missed while the service was down fires once at start, not once per missed time', async () => {
    const { store: s } = await store();
    await s.update((st) => {
      st.schedule.lastFiredAt = new Date(2025, 0, 5, 3, 0, 0).toISOString();
    });
    // Three Sundays later.
    const clock = new ManualClock(new Date(2025, 0, 27, 12, 0, 0).getTime());
    const fired: string[] = [];
    const cron = new CronTrigger({ clock, pattern: '0 3 * * 0', store: s, fire: (d) => fired.push(d), log: () => undefined });
    await cron.start();
    expect(fired).toHaveLength(1);
    expect(fired[0]).toMatch(/missed at .* while stopped/);
    expect(cron.next).toBe(new Date(2025, 1, 2, 3, 0, 0).getTime());
    cron.stop();
  });
});

describe('inactivity rule under a controlled clock', () => {
  it('fires when the last successful build is older than the period, once per period', async () => {
    const { store: s, dir } = await store();
    const clock = new ManualClock(Date.parse('2025-03-10T12:00:00Z'));
    let lastSuccess: number | undefined = Date.parse('2025-03-08T12:00:00Z'); // 2 days ago
    let busy = false;
    const fired: string[] = [];
    const rule = new InactivityTrigger({
      clock,
      afterMs: 7 * DAY,
      store: s,
      lastSuccessAt: async () => lastSuccess,
      busy: () => busy,
      fire: (d) => fired.push(d),
      log: () => undefined,
    });
    await rule.start();
    expect(fired).toEqual([]);
    expect(rule.due).toBe(Date.parse('2025-03-15T12:00:00Z'));

    await clock.advance(5 * DAY - 1);
    expect(fired).toEqual([]);
    await clock.advance(1);
    await vi.waitFor(() => expect(fired).toHaveLength(1));
    expect(fired[0]).toBe('last successful build finished 7d 0h ago (rule: 7d 0h)');
    const persisted = (await ServiceStore.open(dir)).current.inactivity.lastFiredAt;
    expect(persisted).toBe('2025-03-15T12:00:00.000Z');

    // The rebuild failed (no new success): the rule waits another period before firing again.
    await clock.advance(DAY);
    await rule.recheck();
    expect(fired).toHaveLength(1);
    expect(rule.due).toBe(Date.parse('2025-03-22T12:00:00Z'));

    // A success resets the clock: due a period after it.
    lastSuccess = clock.now();
    await rule.recheck();
    expect(rule.due).toBe(lastSuccess + 7 * DAY);

    // While a run is in progress the rule waits for its outcome.
    busy = true;
    await clock.advance(7 * DAY);
    await rule.recheck();
    expect(fired).toHaveLength(1);
    busy = false;
    await rule.recheck();
    expect(fired).toHaveLength(2);
    rule.stop();
  });

  it('fires at once when nothing has succeeded yet', async () => {
    const { store: s } = await store();
    const clock = new ManualClock();
    const fired: string[] = [];
    const rule = new InactivityTrigger({ clock, afterMs: DAY, store: s, lastSuccessAt: async () => undefined, busy: () => false, fire: (d) => fired.push(d), log: () => undefined });
    await rule.start();
    expect(fired).toEqual(['no successful build yet']);
    rule.stop();
  });
});
