// Scheduling an arch's builder runs over its workers: placement by free capacity, max_builds per
// worker, all or nothing on failure and cancellation. The runs wait on promises the test releases.

import { describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { inventorySchema, type Worker } from '../../src/inventory/schema.ts';
import { WorkerPool, allOrNothing, spreadRuns } from '../../src/pipeline/scheduler.ts';

function workers(...specs: Array<[string, string, number?]>): Worker[] {
  return inventorySchema.parse({
    version: 1,
    source: { containerfile: 'Containerfile' },
    workers: specs.map(([name, arch, max]) => ({ name, host: `${name}.example`, arch, ...(max ? { max_builds: max } : {}) })),
  }).workers;
}

/** Lets every queued microtask and promise callback run (p-queue starts jobs on microtasks). */
const settle = () => new Promise<void>((r) => setImmediate(r));

/** A run that records itself and waits until the test releases (or fails) it, or its signal fires. */
class Runs {
  readonly started: Array<{ index: number; worker: string; signal: AbortSignal }> = [];
  readonly ended: number[] = [];
  /** The most runs seen at once on each worker. */
  readonly peak: Record<string, number> = {};
  private readonly gates = new Map<number, { release: () => void; fail: (e: Error) => void }>();

  run = (index: number, worker: Worker, signal: AbortSignal): Promise<string> => {
    this.started.push({ index, worker: worker.name, signal });
    const now = this.running().filter(([, w]) => w === worker.name).length;
    this.peak[worker.name] = Math.max(this.peak[worker.name] ?? 0, now);
    return new Promise<string>((resolve, reject) => {
      const end = () => void (this.ended.includes(index) || this.ended.push(index));
      this.gates.set(index, { release: () => (end(), resolve(`run${index}@${worker.name}`)), fail: (e) => (end(), reject(e)) });
      signal.addEventListener('abort', () => (end(), reject(new FarmError('ABORTED', `run ${index} stopped`))), { once: true });
    });
  };

  release(index: number): void {
    this.gates.get(index)!.release();
  }
  fail(index: number, err: Error): void {
    this.gates.get(index)!.fail(err);
  }
  running(): Array<[number, string]> {
    return this.started.filter((s) => !this.ended.includes(s.index)).map((s) => [s.index, s.worker]);
  }
}

describe('spreadRuns', () => {
  const signal = new AbortController().signal;

  it('two workers with max_builds 1: the two runs go to different workers and run at the same time', async () => {
    const runs = new Runs();
    const pool = new WorkerPool(workers(['a', 'x86_64', 1], ['b', 'x86_64', 1]));
    const done = spreadRuns(pool, 'x86_64', 2, runs.run, signal);
    await settle();
    expect(runs.running()).toEqual([[0, 'a'], [1, 'b']]);
    runs.release(1);
    runs.release(0);
    expect((await done).map((r) => [r.worker.name, r.value])).toEqual([['a', 'run0@a'], ['b', 'run1@b']]);
  });

  it('one worker with max_builds 1: the second run waits for the first', async () => {
    const runs = new Runs();
    const pool = new WorkerPool(workers(['a', 'x86_64', 1]));
    const done = spreadRuns(pool, 'x86_64', 2, runs.run, signal);
    await settle();
    expect(runs.running()).toEqual([[0, 'a']]);
    runs.release(0);
    await settle();
    expect(runs.running()).toEqual([[1, 'a']]);
    runs.release(1);
    expect((await done).map((r) => r.value)).toEqual(['run0@a', 'run1@a']);
  });

  it('runs on one worker up to its max_builds at once, and fills workers by free capacity', async () => {
    const runs = new Runs();
    const pool = new WorkerPool(workers(['a', 'x86_64', 1], ['b', 'x86_64', 2], ['c', 'aarch64', 4]));
    const done = spreadRuns(pool, 'x86_64', 6, runs.run, signal);
    await settle();
    // a takes one slot, b two; the rest wait in the queues they were placed on (a: 2, b: 4).
    expect(runs.running()).toEqual([[0, 'a'], [1, 'b'], [2, 'b']]);
    runs.release(1);
    await settle();
    expect(runs.running()).toEqual([[0, 'a'], [2, 'b'], [4, 'b']]);
    for (const i of [0, 2, 4, 3, 5]) {
      runs.release(i);
      await settle();
    }
    const result = await done;
    expect(result.map((r) => r.worker.name)).toEqual(['a', 'b', 'b', 'a', 'b', 'b']);
    expect(runs.peak).toEqual({ a: 1, b: 2 }); // never more than max_builds at once
  });

  it('the first failure stops the others, waits for them, and is what is thrown; a queued run never starts', async () => {
    const runs = new Runs();
    const pool = new WorkerPool(workers(['a', 'x86_64', 1], ['b', 'x86_64', 1]));
    const done = spreadRuns(pool, 'x86_64', 3, runs.run, signal);
    let rejected = false;
    done.catch(() => (rejected = true));
    await settle();
    expect(runs.running()).toEqual([[0, 'a'], [1, 'b']]); // run 2 waits behind run 0 on a
    runs.fail(1, new FarmError('BUILD', 'bootc-image-builder exited with code 1 on b'));
    await expect(done).rejects.toThrow('bootc-image-builder exited with code 1 on b');
    expect(rejected).toBe(true);
    expect(runs.started.find((s) => s.index === 0)!.signal.aborted).toBe(true);
    expect(runs.ended.sort()).toEqual([0, 1]); // run 0 had ended (stopped) before the rejection
    await settle();
    expect(runs.started.map((s) => s.index)).toEqual([0, 1]);
  });

  it('cancellation stops every run and throws ABORTED', async () => {
    const runs = new Runs();
    const ac = new AbortController();
    const pool = new WorkerPool(workers(['a', 'x86_64', 1], ['b', 'x86_64', 1]));
    const done = spreadRuns(pool, 'x86_64', 2, runs.run, ac.signal);
    await settle();
    ac.abort();
    const err = (await done.catch((e: unknown) => e)) as FarmError;
    expect(err.code).toBe('ABORTED');
    expect(runs.ended.sort()).toEqual([0, 1]);
  });

  it('fails clearly when the arch has no healthy worker', async () => {
    const pool = new WorkerPool(workers(['a', 'x86_64', 1]));
    await expect(spreadRuns(pool, 's390x', 1, new Runs().run, signal)).rejects.toThrow('no healthy worker for s390x');
  });
});

describe('allOrNothing', () => {
  it('resolves to every value in order when all succeed', async () => {
    expect(await allOrNothing([async () => 1, async () => 2], new AbortController().signal)).toEqual([1, 2]);
  });
});
