// Scheduling: every worker has a queue bounded by its max_builds; each of an arch's builder runs
// goes to the healthy worker of that arch with the most free capacity, so several workers share an
// arch's runs and arches run in parallel.

import PQueue from 'p-queue';
import type { Arch } from '../core/arch.ts';
import { FarmError, throwIfAborted } from '../core/errors.ts';
import type { Pool, Worker } from '../inventory/schema.ts';

export class WorkerPool {
  private readonly queues = new Map<string, { worker: Worker; queue: PQueue }>();

  constructor(workers: readonly Worker[]) {
    for (const worker of workers) {
      this.queues.set(worker.name, { worker, queue: new PQueue({ concurrency: worker.max_builds }) });
    }
  }

  workersFor(arch: Arch): Worker[] {
    return [...this.queues.values()].filter((q) => q.worker.arch === arch).map((q) => q.worker);
  }

  /** Load relative to capacity: running + waiting jobs per build slot. */
  private load(name: string): number {
    const q = this.queues.get(name)!;
    return (q.queue.pending + q.queue.size) / q.worker.max_builds;
  }

  /** The least-loaded worker of the arch (inventory order breaks ties), or undefined. */
  pick(arch: Arch): Worker | undefined {
    let best: Worker | undefined;
    for (const w of this.workersFor(arch)) {
      if (!best || this.load(w.name) < this.load(best.name)) best = w;
    }
    return best;
  }

  run<T>(worker: Worker, job: () => Promise<T>): Promise<T> {
    const q = this.queues.get(worker.name);
    if (!q) throw new Error(`unknown worker ${worker.name}`);
    return q.queue.add(job) as Promise<T>;
  }
}

/**
 * Runs tasks together, all or nothing: the first failure aborts the signal the others were given,
 * and once every task has settled it is thrown (not the failures its abort caused). Cancelling
 * `signal` stops them all and throws ABORTED.
 */
export async function allOrNothing<T>(tasks: ReadonlyArray<(signal: AbortSignal) => Promise<T>>, signal: AbortSignal): Promise<T[]> {
  const stop = new AbortController();
  const cancel = () => stop.abort();
  signal.addEventListener('abort', cancel, { once: true });
  let failure: { error: unknown } | undefined;
  try {
    const settled = await Promise.allSettled(
      tasks.map(async (task) => {
        try {
          if (stop.signal.aborted) throw new FarmError('ABORTED', 'cancelled');
          return await task(stop.signal);
        } catch (error) {
          failure ??= { error };
          stop.abort();
          throw error;
        }
      }),
    );
    if (signal.aborted) throw new FarmError('ABORTED', 'cancelled');
    if (failure) throw failure.error;
    return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
  } finally {
    signal.removeEventListener('abort', cancel);
  }
}

/**
 * Spreads `count` runs of one arch over its workers: each is queued on the worker least loaded at
 * the time (the runs are queued in order, so each pick sees the ones placed before it), and a
 * worker runs at most max_builds at once. All or nothing, as allOrNothing: a run still waiting for
 * a slot when another fails never starts. Resolves to each run's worker and value, in run order.
 */
export function spreadRuns<T>(
  pool: WorkerPool,
  arch: Arch,
  count: number,
  run: (index: number, worker: Worker, signal: AbortSignal) => Promise<T>,
  signal: AbortSignal,
): Promise<Array<{ worker: Worker; value: T }>> {
  const tasks = Array.from({ length: count }, (_, index) => async (stop: AbortSignal) => {
    const worker = pool.pick(arch);
    if (!worker) throw new FarmError('NO_WORKER', `no healthy worker for ${arch}`);
    const value = await pool.run(worker, () => {
      throwIfAborted(stop);
      return run(index, worker, stop);
    });
    return { worker, value };
  });
  return allOrNothing(tasks, signal);
}

/**
 * Which arches take pool VMs, and from which pools in which order. Static workers come first: an
 * arch with a healthy static worker takes no VM, unless one of its pools says `prefer: pool`;
 * then it takes its VM first and keeps its static workers only as the fallback (`static`).
 * `count`: one VM per arch, or as many as its builder runs when they may go in parallel (bounded
 * by the pools' max).
 */
export function poolDemand(
  arches: ReadonlyArray<{ arch: Arch; pools: readonly Pool[]; runs: readonly unknown[] }>,
  healthyStatic: readonly Worker[],
): Array<{ arch: Arch; pools: Pool[]; count: number; staticFallback: boolean }> {
  const out: Array<{ arch: Arch; pools: Pool[]; count: number; staticFallback: boolean }> = [];
  for (const a of arches) {
    if (a.pools.length === 0) continue;
    const hasStatic = healthyStatic.some((w) => w.arch === a.arch);
    const poolFirst = a.pools.some((p) => p.prefer === 'pool');
    if (hasStatic && !poolFirst) continue;
    const pools = [...a.pools].sort((x, y) => Number(y.prefer === 'pool') - Number(x.prefer === 'pool'));
    const room = pools.reduce((n, p) => n + p.max, 0);
    out.push({ arch: a.arch, pools, count: Math.max(1, Math.min(a.runs.length, room)), staticFallback: hasStatic });
  }
  return out;
}
