// The uploader toolkit's steps: cleanups in reverse on failure, cleanup failures reported beside
// the original error, cancellation, and all-or-nothing parallel work.

import { describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { wrapError } from '../../uploaders/toolkit/errors.ts';
import { Steps, StepsError, allOrNothing, runSteps, type StepsOptions } from '../../uploaders/toolkit/steps.ts';

function options(over: Partial<StepsOptions> = {}): StepsOptions & { logs: string[] } {
  const logs: string[] = [];
  return {
    signal: new AbortController().signal,
    log: (m) => logs.push(m),
    wrap: (step, err) => wrapError(err, { step, where: 'tgt' }),
    logs,
    ...over,
  };
}

describe('Steps', () => {
  it('runs cleanups in reverse order on failure, skipping dismissed ones, then throws the wrapped failure', async () => {
    const order: string[] = [];
    const dropped: string[] = [];
    const o = options();
    const err = await runSteps(o, async (steps) => {
      await steps.run('create a', async () => {
        steps.onCleanup('a', async () => void order.push('a'), { drop: async () => void dropped.push('a') });
      });
      await steps.run('create b', async () => {
        steps.onCleanup('b', async () => void order.push('b')).dismiss();
      });
      await steps.run('create c', async () => {
        steps.onCleanup('c', async () => {
          order.push('c');
          return 'c was removed';
        });
      });
      await steps.run('register', async () => {
        throw new Error('refused');
      });
    }).catch((e: unknown) => e);
    expect(order).toEqual(['c', 'a']);
    expect(dropped).toEqual(['a']);
    expect(o.logs).toEqual(['c was removed', 'removed a']);
    expect(err).toBeInstanceOf(FarmError);
    expect((err as FarmError).code).toBe('UPLOAD');
    expect((err as FarmError).message).toBe('tgt: register failed: refused');
  });

  it('reports what a cleanup could not remove beside the original error, and keeps going', async () => {
    const order: string[] = [];
    const o = options({ leftoverHint: 'Remove them by hand.', redact: (s) => s.replace('s3cr3t', '***') });
    const err = (await runSteps(o, async (steps) => {
      steps.onCleanup('snapshot snap-1', async () => void order.push('snap'));
      steps.onCleanup('ami ami-1', async () => {
        throw new Error('deregister refused for s3cr3t');
      });
      await steps.run('wait for ami-1', async () => {
        throw new FarmError('UPLOAD', 'tgt: ami-1 failed', { hint: 'look at the console' });
      });
    }).catch((e: unknown) => e)) as StepsError;
    expect(err).toBeInstanceOf(StepsError);
    expect(err.code).toBe('UPLOAD');
    expect(err.message).toBe('tgt: ami-1 failed; cleanup could not remove: ami ami-1 (deregister refused for ***)');
    expect(err.hint).toBe('Remove them by hand. look at the console');
    expect(err.failure.message).toBe('tgt: ami-1 failed');
    expect(err.leftovers.map((l) => l.what)).toEqual(['ami ami-1']);
    // The failed cleanup did not stop the one registered before it.
    expect(order).toEqual(['snap']);
  });

  it('refuses to start a step once cancelled, and cleans up under its own deadline', async () => {
    const controller = new AbortController();
    let cleanupSignal: AbortSignal | undefined;
    const err = await runSteps(options({ signal: controller.signal }), async (steps) => {
      await steps.run('create', async () => {
        steps.onCleanup('thing', async (s) => {
          cleanupSignal = s;
        });
      });
      controller.abort();
      await steps.run('never runs', async () => {
        throw new Error('must not run');
      });
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ABORTED', message: 'tgt: cancelled during never runs' });
    expect(cleanupSignal).toBeDefined();
    expect(cleanupSignal!.aborted).toBe(false);
  });

  it('names the current step for a failure outside run()', async () => {
    const steps = new Steps(options());
    steps.current = 'copy to other regions';
    await expect(steps.fail(new Error('boom'))).rejects.toThrow('tgt: copy to other regions failed: boom');
  });
});

describe('allOrNothing', () => {
  it('aborts the others on the first failure and throws that failure, not their cancellations', async () => {
    const seen: string[] = [];
    const err = await allOrNothing(
      ['slow', 'fails'],
      async (item, signal) => {
        if (item === 'fails') throw new Error('region refused');
        await new Promise((_, reject) => signal.addEventListener('abort', () => reject(new DOMException('x', 'AbortError')), { once: true }));
        seen.push('never');
      },
      new AbortController().signal,
    ).catch((e: unknown) => e);
    expect((err as Error).message).toBe('region refused');
    expect(seen).toEqual([]);
  });

  it('returns every result in order, and rejects ABORTED when the caller cancels', async () => {
    expect(await allOrNothing([3, 1, 2], async (n) => n * 2, new AbortController().signal)).toEqual([6, 2, 4]);
    const c = new AbortController();
    const p = allOrNothing([1], (_, s) => new Promise((_r, reject) => s.addEventListener('abort', () => reject(new Error('stopped')))), c.signal);
    c.abort();
    await expect(p).rejects.toMatchObject({ code: 'ABORTED' });
  });
});

describe('Steps, wording', () => {
  it('wraps a failure once, and notes a complete cleanup when asked to', async () => {
    const o = options({
      wrap: (step, err) => wrapError(err, { step, where: 'lab-glance', prefixFarmErrors: true, format: (s, d) => `${s}: ${d}` }),
      removedNote: 'created images were removed',
    });
    const err = await runSteps(o, async (steps) => {
      steps.onCleanup('image 1', async () => {});
      steps.current = 'upload of x';
      await steps.run('create image x', async () => {
        throw new FarmError('UPLOAD', 'HTTP 500');
      });
    }).catch((e: unknown) => e);
    expect((err as FarmError).message).toBe('lab-glance: create image x: HTTP 500 (created images were removed)');
    // Nothing created, nothing removed: no note.
    const plain = await runSteps(o, async () => {
      throw new Error('refused');
    }).catch((e: unknown) => e);
    expect((plain as FarmError).message).toBe('lab-glance: start: refused');
  });
});
