// Scheduling: every worker has a queue bounded by its max_builds; an arch's job goes to the
// healthy worker of that arch with the most free capacity, so several workers share an arch's
// load and arches run in parallel.

import PQueue from 'p-queue';
import type { Arch } from '../arch.ts';
import type { Worker } from '../inventory/schema.ts';

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
