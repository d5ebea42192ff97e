import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/service/clock.ts';
import { BuildQueue, runArches, statusText, type RunContext, type RunResult } from '../../src/service/queue.ts';
import { ServiceStore, type Reason, type RunRecord } from '../../src/service/store.ts';

const reason = (kind: Reason['kind'], extra: Partial<Reason> = {}): Reason => ({ kind, detail: `${kind} trigger`, at: new Date().toISOString(), force: true, ...extra });

/** An execute whose runs end only when the test says so. */
function gatedExecute() {
  const started: Array<{ run: RunRecord; ctx: RunContext; finish: (r: RunResult) => void }> = [];
  const execute = (run: Readonly<RunRecord>, ctx: RunContext) =>
    new Promise<RunResult>((resolve, reject) => {
      started.push({ run: structuredClone(run) as RunRecord, ctx, finish: resolve });
      ctx.signal.addEventListener('abort', () => reject(new Error('aborted')));
    });
  return { started, execute };
}

async function setup(debounceMs = 1000) {
  const dir = await mkdtemp(join(tmpdir(), 'farm-queue-'));
  const store = await ServiceStore.open(dir);
  const clock = new ManualClock();
  const gate = gatedExecute();
  const finished: RunRecord[] = [];
  const queue = new BuildQueue({ clock, store, debounceMs, execute: gate.execute, log: () => undefined, onFinished: (r) => void finished.push(r) });
  return { dir, store, clock, queue, gate, finished };
}

// The machine may be loaded (CI runs the integration suite beside): waits are generous.
const WAIT = { timeout: 10_000 };

describe('build queue', () => {
  it('triggers within the debounce window make one run', async () => {
    const { clock, queue, gate, store, dir } = await setup(2000);
    const a = queue.submit(reason('github'));
    const b = queue.submit(reason('api'));
    expect(a.outcome).toBe('queued');
    expect(b.outcome).toBe('coalesced');
    expect(b.run.id).toBe(a.run.id);
    expect(statusText(queue.pending!)).toBe('queued (coalesced 2 triggers)');
    await clock.advance(1999);
    expect(gate.started).toHaveLength(0);
    await clock.advance(1);
    await vi.waitFor(() => expect(gate.started).toHaveLength(1), WAIT);
    expect(gate.started[0]!.run.reasons.map((r) => r.kind)).toEqual(['github', 'api']);
    expect(queue.pending).toBeUndefined();
    // The state file says what runs, so a restart knows.
    await vi.waitFor(async () => {
      const reread = await ServiceStore.open(dir);
      expect(reread.current.running?.id).toBe(a.run.id);
      expect(reread.current.pending).toBeUndefined();
    }, WAIT);
    expect(store.current.running?.id).toBe(a.run.id);
  });

  it('never runs two at once: one runs, one waits, more triggers join the waiting one', async () => {
    const { clock, queue, gate, finished } = await setup(0);
    queue.submit(reason('source'));
    await clock.advance(0);
    await vi.waitFor(() => expect(gate.started).toHaveLength(1), WAIT);
    const w1 = queue.submit(reason('api'));
    const w2 = queue.submit(reason('schedule'));
    const w3 = queue.submit(reason('gitlab'));
    expect([w1.outcome, w2.outcome, w3.outcome]).toEqual(['queued', 'coalesced', 'coalesced']);
    expect(queue.pending!.reasons).toHaveLength(3);
    expect(statusText(queue.pending!)).toBe('queued (coalesced 3 triggers)');
    await clock.advance(60_000);
    expect(gate.started).toHaveLength(1); // still only the first

    gate.started[0]!.finish({ status: 'succeeded', buildId: '20250101t000000z' });
    await vi.waitFor(() => expect(finished.map((r) => r.status)).toEqual(['succeeded']), WAIT);
    await clock.advance(0);
    await vi.waitFor(() => expect(gate.started).toHaveLength(2), WAIT);
    expect(gate.started[1]!.run.reasons.map((r) => r.kind)).toEqual(['api', 'schedule', 'gitlab']);
    gate.started[1]!.finish({ status: 'skipped', message: 'up to date' });
    await queue.idle();
    expect(finished.map((r) => r.status)).toEqual(['succeeded', 'skipped']);
    expect(gate.started).toHaveLength(2);
  });

  it('is not idle, and stop() does not return, until a finished run is recorded and announced', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'farm-queue-'));
    const store = await ServiceStore.open(dir);
    const clock = new ManualClock();
    const gate = gatedExecute();
    let announce!: () => void;
    const announced: string[] = [];
    const queue = new BuildQueue({
      clock,
      store,
      debounceMs: 0,
      execute: gate.execute,
      log: () => undefined,
      onFinished: (r) => new Promise<void>((resolve) => (announce = () => resolve(void announced.push(r.id)))),
    });
    const { run } = queue.submit(reason('api'));
    await clock.advance(0);
    await vi.waitFor(() => expect(gate.started).toHaveLength(1), WAIT);
    gate.started[0]!.finish({ status: 'succeeded' });
    await vi.waitFor(() => expect(queue.running).toBeUndefined(), WAIT);
    let idle = false;
    let stopped = false;
    void queue.idle().then(() => (idle = true));
    await vi.waitFor(() => expect(announce).toBeDefined(), WAIT);
    void queue.stop('finish').then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 50));
    expect([idle, stopped]).toEqual([false, false]); // the announcement (metrics, notifications) is under way
    announce();
    await vi.waitFor(() => expect([idle, stopped]).toEqual([true, true]), WAIT);
    expect(announced).toEqual([run.id]);
  });

  it('stop(cancel) aborts the running build and keeps the waiting run for the next start', async () => {
    const { clock, queue, gate, dir } = await setup(0);
    queue.submit(reason('source'));
    await clock.advance(0);
    await vi.waitFor(() => expect(gate.started).toHaveLength(1), WAIT);
    queue.submit(reason('api'));
    await queue.stop('cancel');
    expect(gate.started[0]!.ctx.signal.aborted).toBe(true);
    expect(queue.accepting).toBe(false);
    const reread = await ServiceStore.open(dir);
    expect(reread.current.running).toBeUndefined();
    expect(reread.current.runs[0]!.status).toBe('cancelled');
    expect(reread.current.pending!.reasons.map((r) => r.kind)).toEqual(['api']);

    // The next process takes the waiting run back (and clears it from the store once started).
    const waiting = reread.current.pending!;
    const gate2 = gatedExecute();
    const clock2 = new ManualClock();
    const q2 = new BuildQueue({ clock: clock2, store: reread, debounceMs: 0, execute: gate2.execute, log: () => undefined });
    q2.restore(reread.current.pending);
    await clock2.advance(0);
    await vi.waitFor(() => expect(gate2.started).toHaveLength(1), WAIT);
    expect(gate2.started[0]!.run.id).toBe(waiting.id);
    expect(gate2.started[0]!.run.reasons.map((r) => r.kind)).toEqual(['api']);
  });

  it('stop(finish) lets the running build end', async () => {
    const { clock, queue, gate } = await setup(0);
    queue.submit(reason('source'));
    await clock.advance(0);
    await vi.waitFor(() => expect(gate.started).toHaveLength(1), WAIT);
    let stopped = false;
    const stopping = queue.stop('finish').then(() => (stopped = true));
    await clock.advance(10);
    expect(stopped).toBe(false);
    expect(gate.started[0]!.ctx.signal.aborted).toBe(false);
    gate.started[0]!.finish({ status: 'succeeded' });
    await stopping;
    expect(stopped).toBe(true);
  });

  it('a run builds the union of the arches its triggers asked for, or the default if any asked for it', () => {
    expect(runArches([reason('api', { arches: ['s390x'] }), reason('api', { arches: ['aarch64', 's390x'] })])).toEqual(['aarch64', 's390x']);
    expect(runArches([reason('api', { arches: ['s390x'] }), reason('source')])).toBeUndefined();
  });
});
