// retry (src/core/retry.ts): the predicate, the attempt count, and cancellation beating the retries.

import { describe, expect, it } from 'vitest';
import { retry } from '../../src/core/retry.ts';

describe('retry', () => {
  it('retries retryable failures until one succeeds, telling onRetry', async () => {
    const retried: number[] = [];
    let n = 0;
    const v = await retry(
      async (attempt) => {
        n++;
        if (attempt < 3) throw new Error('volume in use');
        return 'deleted';
      },
      { what: 'delete', retries: 5, minTimeoutMs: 1, onRetry: (_e, attempt) => retried.push(attempt) },
    );
    expect(v).toBe('deleted');
    expect(n).toBe(3);
    expect(retried).toEqual([1, 2]);
  });

  it('throws a failure the predicate refuses at once, and the last one when retries run out', async () => {
    let n = 0;
    const refused = await retry(
      async () => {
        n++;
        throw new Error('permission denied');
      },
      { what: 'x', retries: 5, minTimeoutMs: 1, retryable: (e) => /in use/.test(e.message) },
    ).catch((e: unknown) => e);
    expect((refused as Error).message).toBe('permission denied');
    expect(n).toBe(1);
    n = 0;
    const spent = await retry(
      async () => {
        n++;
        throw new Error(`busy ${n}`);
      },
      { what: 'x', retries: 2, minTimeoutMs: 1 },
    ).catch((e: unknown) => e);
    expect((spent as Error).message).toBe('busy 3');
  });

  it('rejects ABORTED as soon as the signal fires, even between attempts', async () => {
    const c = new AbortController();
    let n = 0;
    const p = retry(
      async () => {
        n++;
        throw new Error('busy');
      },
      { what: 'delete volume v', retries: 10, minTimeoutMs: 10_000, signal: c.signal },
    );
    setTimeout(() => c.abort(), 20);
    const t0 = Date.now();
    await expect(p).rejects.toMatchObject({ code: 'ABORTED', message: 'delete volume v: cancelled' });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(n).toBe(1);
    await expect(retry(async () => 1, { what: 'y', retries: 1, minTimeoutMs: 1, signal: c.signal })).rejects.toMatchObject({ code: 'ABORTED' });
  });
});
