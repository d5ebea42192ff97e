// The service's scheduled chores: `farm prune` (service.prune: { schedule, apply }) and
// `farm workers sweep` (service.sweep, or every 10 minutes when there are pools), run in the
// service process with the same code as the commands. Each remembers when it last fired and what
// it did (service.json), so a restart neither repeats nor loses a run; the log and the page say.

import { errorMessage } from '../core/errors.ts';
import { loadInventory } from '../inventory/load.ts';
import { runPrune, type PruneRun } from '../pipeline/prune-run.ts';
import { sweepPools, type SweepItem } from '../pipeline/sweep.ts';
import type { UploaderFactory } from '../pipeline/upload-stage.ts';
import type { LoadedInventory } from '../inventory/schema.ts';
import { createUploader } from '../targets.ts';
import type { Clock } from './clock.ts';
import type { ServiceSettings } from './config.ts';
import { CronTrigger, type FiredMemory } from './schedule.ts';
import type { ChoreKind, ChoreReport, ServiceStore } from './store.ts';

export interface ChoreView {
  pattern: string;
  next?: string;
  apply?: boolean;
  running: boolean;
  last?: ChoreReport;
}

export interface ChoreDeps {
  inventoryPath: string;
  settings: ServiceSettings;
  store: ServiceStore;
  clock: Clock;
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
  factory?: UploaderFactory;
  /** Stand-ins for tests. */
  prune?: (loaded: LoadedInventory, apply: boolean, now: Date) => Promise<PruneRun>;
  sweep?: (loaded: LoadedInventory) => Promise<SweepItem[]>;
}

const memory = (kind: ChoreKind): FiredMemory => ({
  get: (s) => s.chores?.[kind]?.lastFiredAt,
  set: (s, iso) => {
    s.chores ??= {};
    s.chores[kind] = { ...s.chores[kind], lastFiredAt: iso };
  },
});

export function pruneSummary(run: PruneRun): { ok: boolean; summary: string } {
  const count = (a: string) => run.plan.filter((p) => p.action === a).length;
  const planned = `planned: deprecate ${count('deprecate')}, delete ${count('delete')}, of ${run.plan.length} image(s) listed`;
  if (run.refused) return { ok: false, summary: `refused: ${run.refused}; nothing was done (${planned})` };
  if (run.dryRun) return { ok: true, summary: `dry run (service.prune.apply is false): ${planned}` };
  const deleted = run.removed.filter((r) => !r.error).length;
  return {
    ok: run.failures.length === 0,
    summary: `deprecated ${run.deprecated.length}, deleted ${deleted}` + (run.failures.length ? `; ${run.failures.length} failed: ${run.failures.join('; ')}` : ''),
  };
}

export function sweepSummary(items: readonly SweepItem[]): { ok: boolean; summary: string } {
  if (items.length === 0) return { ok: true, summary: 'no pool VMs left by earlier runs' };
  const by = (o: SweepItem['outcome']) => items.filter((i) => i.outcome === o);
  const failed = [...by('failed'), ...by('pool not in the inventory')];
  const gone = by('given back').map((i) => `${i.pool}/${i.id} (${i.reason})`);
  return {
    ok: failed.length === 0,
    summary: `gave back ${gone.length}${gone.length ? `: ${gone.join(', ')}` : ''}; left ${by('left').length}` + (failed.length ? `; ${failed.length} failed: ${failed.map((i) => `${i.pool}/${i.id}: ${i.error ?? i.outcome}`).join('; ')}` : ''),
  };
}

export class Chores {
  private readonly triggers = new Map<ChoreKind, CronTrigger>();
  private readonly running = new Map<ChoreKind, Promise<void>>();

  constructor(private readonly deps: ChoreDeps) {}

  async start(): Promise<void> {
    const s = this.deps.settings;
    if (s.prune) await this.arm('prune', s.prune.schedule);
    if (s.sweep) await this.arm('sweep', s.sweep.schedule);
  }

  private async arm(kind: ChoreKind, pattern: string): Promise<void> {
    const t = new CronTrigger({ clock: this.deps.clock, pattern, store: this.deps.store, memory: memory(kind), fire: () => void this.run(kind), log: this.deps.log });
    this.triggers.set(kind, t);
    await t.start();
    this.deps.log(`${kind} schedule "${pattern}": next at ${t.next ? new Date(t.next).toISOString() : 'never'}`);
  }

  /** Runs a chore now; a run of it still going is waited for instead of starting another. */
  run(kind: ChoreKind): Promise<void> {
    const busy = this.running.get(kind);
    if (busy) {
      this.deps.log(`${kind}: the previous run is still going; this one is skipped`);
      return busy;
    }
    const going = this.once(kind).finally(() => this.running.delete(kind));
    this.running.set(kind, going);
    return going;
  }

  /** Waits for the chores in progress (at shutdown). */
  async stop(): Promise<void> {
    for (const t of this.triggers.values()) t.stop();
    await Promise.allSettled([...this.running.values()]);
  }

  private async once(kind: ChoreKind): Promise<void> {
    const at = new Date(this.deps.clock.now());
    let result: { ok: boolean; summary: string };
    try {
      const loaded = await loadInventory(this.deps.inventoryPath);
      if (kind === 'prune') {
        const apply = this.deps.settings.prune?.apply ?? false;
        result = pruneSummary(await (this.deps.prune ?? this.prune.bind(this))(loaded, apply, at));
      } else {
        result = sweepSummary(await (this.deps.sweep ?? sweepPools)(loaded));
      }
    } catch (err) {
      result = { ok: false, summary: `failed: ${errorMessage(err)}` };
    }
    this.deps.log(`${kind} (scheduled): ${result.summary}`);
    const report: ChoreReport = { at: at.toISOString(), ...result };
    await this.deps.store.update((s) => {
      s.chores ??= {};
      s.chores[kind] = { ...s.chores[kind], last: report };
    });
  }

  private prune(loaded: LoadedInventory, apply: boolean, now: Date): Promise<PruneRun> {
    const factory = this.deps.factory ?? ((target, name) => createUploader(target, name, this.deps.env));
    return runPrune(loaded, { apply, now, factory, signal: AbortSignal.timeout(3_600_000) });
  }

  view(): Partial<Record<ChoreKind, ChoreView>> {
    const out: Partial<Record<ChoreKind, ChoreView>> = {};
    for (const [kind, t] of this.triggers) {
      const last = this.deps.store.current.chores?.[kind]?.last;
      out[kind] = {
        pattern: kind === 'prune' ? this.deps.settings.prune!.schedule : this.deps.settings.sweep!.schedule,
        ...(t.next ? { next: new Date(t.next).toISOString() } : {}),
        ...(kind === 'prune' ? { apply: this.deps.settings.prune!.apply } : {}),
        running: this.running.has(kind),
        ...(last ? { last } : {}),
      };
    }
    return out;
  }
}
