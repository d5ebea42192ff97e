// One build of an inventory at a time: at most one run in progress and one waiting. A trigger
// that arrives while one waits joins it (its reasons list grows), so any burst of triggers makes
// one more build, not many. A new run waits `debounceMs` before it starts, so triggers that arrive
// together (a push seen by the webhook and the poller) are one build too.

import { randomBytes } from 'node:crypto';
import type { Arch } from '../core/arch.ts';
import { errorMessage } from '../core/errors.ts';
import type { Clock, Timer } from './clock.ts';
import type { Reason, RunRecord, ServiceStore } from './store.ts';

export interface RunResult {
  status: RunRecord['status'];
  buildId?: string;
  message?: string;
  key?: string;
  commit?: string;
}

export interface RunContext {
  signal: AbortSignal;
  /** Called as soon as the build has an id, so the status shows it while it runs. */
  setBuildId(id: string): void;
}

export type Execute = (run: Readonly<RunRecord>, ctx: RunContext) => Promise<RunResult>;

export interface SubmitResult {
  run: RunRecord;
  /** 'queued': a new run; 'coalesced': joined the waiting one. */
  outcome: 'queued' | 'coalesced';
}

export interface QueueOptions {
  clock: Clock;
  store: ServiceStore;
  debounceMs: number;
  execute: Execute;
  log: (line: string) => void;
  onFinished?: (run: RunRecord) => void | Promise<void>;
}

/** "queued (coalesced 3 triggers)": what the status page and the API say of a waiting run. */
export function statusText(run: Pick<RunRecord, 'status' | 'reasons'>): string {
  if (run.status === 'queued') return run.reasons.length > 1 ? `queued (coalesced ${run.reasons.length} triggers)` : 'queued';
  return run.status;
}

/** The arches a run builds: the union of what its reasons asked, or undefined (the default) if any asked for the default. */
export function runArches(reasons: readonly Reason[]): Arch[] | undefined {
  if (reasons.some((r) => !r.arches)) return undefined;
  return [...new Set(reasons.flatMap((r) => r.arches!))].sort();
}

export function runForced(reasons: readonly Reason[]): boolean {
  return reasons.some((r) => r.force);
}

export class BuildQueue {
  private active: { run: RunRecord; controller: AbortController; done: Promise<void> } | undefined;
  private waiting: RunRecord | undefined;
  private startTimer: Timer | undefined;
  private stopping = false;
  private idleWaiters: Array<() => void> = [];
  /** Runs that ended and are being recorded and announced. */
  private finishing = 0;
  /** The last run's whole life, recording and announcing included (stop() waits for it). */
  private executing: Promise<void> | undefined;

  constructor(private readonly opts: QueueOptions) {}

  get running(): Readonly<RunRecord> | undefined {
    return this.active?.run;
  }

  get pending(): Readonly<RunRecord> | undefined {
    return this.waiting;
  }

  get accepting(): boolean {
    return !this.stopping;
  }

  /** Takes back a run that was waiting when the last process stopped. */
  restore(run: RunRecord | undefined): void {
    if (!run || this.waiting) return;
    this.waiting = { ...run, status: 'queued' };
    this.opts.log(`resuming queued run ${run.id} (${run.reasons.map((r) => r.kind).join(', ')})`);
    this.schedule();
  }

  submit(reason: Reason): SubmitResult {
    if (this.waiting) {
      this.waiting.reasons.push(reason);
      this.opts.log(`trigger ${reason.kind} (${reason.detail}) joined queued run ${this.waiting.id}: ${statusText(this.waiting)}`);
      void this.persist();
      return { run: this.waiting, outcome: 'coalesced' };
    }
    const run: RunRecord = {
      id: `r${new Date(this.opts.clock.now()).toISOString().replace(/\D/g, '').slice(0, 14)}-${randomBytes(3).toString('hex')}`,
      reasons: [reason],
      queuedAt: new Date(this.opts.clock.now()).toISOString(),
      status: 'queued',
    };
    this.waiting = run;
    this.opts.log(`trigger ${reason.kind} (${reason.detail}): run ${run.id} queued`);
    void this.persist();
    this.schedule();
    return { run, outcome: 'queued' };
  }

  /** Resolves once nothing runs and nothing waits. */
  idle(): Promise<void> {
    if (!this.active && !this.waiting && this.finishing === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /**
   * Stops taking runs. 'cancel' aborts the running build (it records itself as cancelled);
   * 'finish' lets it end. The waiting run stays in the state file for the next start.
   */
  async stop(mode: 'cancel' | 'finish'): Promise<void> {
    this.stopping = true;
    this.startTimer?.cancel();
    if (this.active && mode === 'cancel') this.active.controller.abort(new Error('farm serve is stopping'));
    await this.active?.done;
    await this.executing;
    await this.persist();
  }

  /** Cancels the running build now (a second SIGTERM while finishing). */
  cancelRunning(): void {
    this.active?.controller.abort(new Error('farm serve is stopping'));
  }

  private schedule(): void {
    if (this.stopping || this.active || !this.waiting) return;
    this.startTimer?.cancel();
    const readyAt = Date.parse(this.waiting.queuedAt) + this.opts.debounceMs;
    this.startTimer = this.opts.clock.after(readyAt - this.opts.clock.now(), () => {
      this.startTimer = undefined;
      this.startNext();
    });
  }

  private startNext(): void {
    if (this.stopping || this.active || !this.waiting) return;
    const run = this.waiting;
    this.waiting = undefined;
    run.status = 'running';
    run.startedAt = new Date(this.opts.clock.now()).toISOString();
    const controller = new AbortController();
    let finished!: () => void;
    this.active = { run, controller, done: new Promise<void>((r) => (finished = r)) };
    this.executing = this.execute(run, controller).finally(finished);
  }

  private async execute(run: RunRecord, controller: AbortController): Promise<void> {
    this.opts.log(`run ${run.id} started (${run.reasons.map((r) => r.kind).join(', ')})`);
    void this.persist();
    let result: RunResult;
    try {
      result = await this.opts.execute(run, {
        signal: controller.signal,
        setBuildId: (id) => {
          run.buildId = id;
          void this.persist();
        },
      });
    } catch (err) {
      result = { status: controller.signal.aborted ? 'cancelled' : 'error', message: errorMessage(err) };
    }
    Object.assign(run, result);
    run.finishedAt = new Date(this.opts.clock.now()).toISOString();
    this.opts.log(`run ${run.id} ${run.status}${run.buildId ? ` (build ${run.buildId})` : ''}${run.message ? `: ${run.message}` : ''}`);
    // No longer running, but not idle until recorded and announced (metrics, notifications).
    this.finishing++;
    this.active = undefined;
    try {
      await this.opts.store.update((s) => {
        s.runs.unshift(structuredClone(run));
      });
      await this.persist();
      await this.opts.onFinished?.(run);
    } catch (err) {
      this.opts.log(`after run ${run.id}: ${errorMessage(err)}`);
    } finally {
      this.finishing--;
    }
    if (this.waiting) this.schedule();
    else if (!this.active && this.finishing === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private persist(): Promise<void> {
    const running = this.active ? structuredClone(this.active.run) : undefined;
    const pending = this.waiting ? structuredClone(this.waiting) : undefined;
    return this.opts.store
      .update((s) => {
        if (running) s.running = running;
        else delete s.running;
        if (pending) s.pending = pending;
        else delete s.pending;
      })
      .catch((err: unknown) => this.opts.log(`cannot write the service state: ${errorMessage(err)}`));
  }
}
