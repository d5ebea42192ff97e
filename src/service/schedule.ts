// Time-based triggers: a cron schedule (croner computes the times; the service clock fires them)
// and the inactivity rule (rebuild when the last successful build is older than a period). Both
// remember when they last fired in the service state, so a restart neither repeats nor loses one:
// a schedule time missed while the service was down fires once at start, as systemd's
// Persistent=true timers do.

import { Cron } from 'croner';
import { errorMessage } from '../core/errors.ts';
import type { Clock, Timer } from './clock.ts';
import { formatSeconds } from './duration.ts';
import type { ServiceState, ServiceStore } from './store.ts';

/** Where a trigger remembers when it last fired (the build schedule's, or a chore's). */
export interface FiredMemory {
  get(state: ServiceState): string | undefined;
  set(state: ServiceState, iso: string): void;
}

const buildSchedule: FiredMemory = {
  get: (s) => s.schedule.lastFiredAt,
  set: (s, iso) => {
    s.schedule.lastFiredAt = iso;
  },
};

export class CronTrigger {
  private readonly cron: Cron;
  private timer: Timer | undefined;
  private nextAt: number | undefined;

  constructor(
    private readonly opts: { clock: Clock; pattern: string; store: ServiceStore; fire: (detail: string) => void; log: (line: string) => void; memory?: FiredMemory },
  ) {
    this.cron = new Cron(opts.pattern, { paused: true });
  }

  /** When it fires next (ms since the epoch). */
  get next(): number | undefined {
    return this.nextAt;
  }

  async start(): Promise<void> {
    const now = this.opts.clock.now();
    const memory = this.opts.memory ?? buildSchedule;
    const last = memory.get(this.opts.store.current);
    if (!last) {
      // First start: the schedule counts from now; nothing is "missed" before the service existed.
      await this.opts.store.update((s) => memory.set(s, new Date(now).toISOString()));
    } else {
      const due = this.cron.nextRun(new Date(last));
      if (due && due.getTime() <= now) await this.fireNow(`schedule "${this.opts.pattern}" (missed at ${due.toISOString()} while stopped)`);
    }
    this.arm();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  private arm(): void {
    const now = this.opts.clock.now();
    const next = this.cron.nextRun(new Date(now));
    this.nextAt = next?.getTime();
    if (this.nextAt === undefined) return;
    this.timer = this.opts.clock.after(this.nextAt - now, () => {
      void this.fireNow(`schedule "${this.opts.pattern}"`)
        .catch((err: unknown) => this.opts.log(`schedule: ${errorMessage(err)}`))
        .finally(() => this.arm());
    });
  }

  private async fireNow(detail: string): Promise<void> {
    await this.opts.store.update((s) => (this.opts.memory ?? buildSchedule).set(s, new Date(this.opts.clock.now()).toISOString()));
    this.opts.fire(detail);
  }
}

export class InactivityTrigger {
  private timer: Timer | undefined;
  private dueAt: number | undefined;
  private evaluating: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly opts: {
      clock: Clock;
      afterMs: number;
      store: ServiceStore;
      /** When the last successful build finished (ms), if any. */
      lastSuccessAt: () => Promise<number | undefined>;
      /** True while a run is in progress or waiting: its outcome decides, so nothing fires. */
      busy: () => boolean;
      fire: (detail: string) => void;
      log: (line: string) => void;
    },
  ) {}

  get due(): number | undefined {
    return this.dueAt;
  }

  start(): Promise<void> {
    return this.recheck();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  /** Re-evaluates now (at start, on its timer, and after each run). */
  recheck(): Promise<void> {
    this.evaluating ??= this.evaluate()
      .catch((err: unknown) => this.opts.log(`inactivity rule: ${errorMessage(err)}`))
      .finally(() => (this.evaluating = undefined));
    return this.evaluating;
  }

  private async evaluate(): Promise<void> {
    if (this.stopped) return;
    this.timer?.cancel();
    const last = await this.opts.lastSuccessAt();
    const fired = this.opts.store.current.inactivity.lastFiredAt;
    // A failed rebuild is not retried before another period has passed: other triggers still work.
    const base = Math.max(last ?? -Infinity, fired ? Date.parse(fired) : -Infinity);
    const now = this.opts.clock.now();
    this.dueAt = Number.isFinite(base) ? base + this.opts.afterMs : now;
    if (this.dueAt <= now && !this.opts.busy()) {
      await this.opts.store.update((s) => {
        s.inactivity.lastFiredAt = new Date(now).toISOString();
      });
      const detail =
        last === undefined
          ? 'no successful build yet'
          : `last successful build finished ${formatSeconds((now - last) / 1000)} ago (rule: ${formatSeconds(this.opts.afterMs / 1000)})`;
      this.opts.fire(detail);
      this.dueAt = now + this.opts.afterMs;
    }
    if (this.dueAt > now && !this.stopped) this.timer = this.opts.clock.after(this.dueAt - now, () => void this.recheck());
  }
}
