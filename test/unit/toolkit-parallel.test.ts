// sendParallel (uploaders/toolkit/parallel.ts), the send loop of EBS direct and Azure page blobs:
// bounded requests and read-ahead, the first failure stops the rest and is named by position,
// the caller's abort is ABORTED.
import { describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { sendParallel } from '../../uploaders/toolkit/parallel.ts';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));
const base = { concurrency: 3, readAhead: 2, position: (n: number) => n, describe: (n: number) => `item ${n}`, requests: 'item(s)' };

describe('sendParallel', () => {
  it('keeps at most `concurrency` requests running and reads at most `readAhead` beyond them', async () => {
    let running = 0;
    let peak = 0;
    let read = 0;
    let sent = 0;
    let maxAhead = 0;
    async function* items() {
      for (let i = 0; i < 40; i++) {
        read++;
        maxAhead = Math.max(maxAhead, read - sent);
        yield i;
      }
    }
    await sendParallel({
      ...base,
      items: items(),
      signal: AbortSignal.timeout(10_000),
      send: async () => {
        running++;
        peak = Math.max(peak, running);
        await tick(2);
        running--;
        sent++;
      },
    });
    expect(sent).toBe(40);
    expect(peak).toBe(3);
    expect(maxAhead).toBeLessThanOrEqual(3 + 2 + 1);
  });

  it('stops at the first failure, counts the failures and names the first by position', async () => {
    const started: number[] = [];
    const err = await sendParallel({
      ...base,
      items: Array.from({ length: 50 }, (_, i) => i),
      signal: AbortSignal.timeout(10_000),
      send: async (n, signal) => {
        started.push(n);
        if (n === 7 || n === 5) throw new Error(`boom ${n}`);
        await new Promise((resolve, reject) => {
          const t = setTimeout(resolve, 20);
          signal.addEventListener('abort', () => (clearTimeout(t), reject(Object.assign(new Error('aborted'), { name: 'AbortError' }))), { once: true });
        });
      },
    }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toMatch(/^\d item\(s\) failed after retries \(first: item 5: boom 5\)$/);
    // Nothing after the failures started: the rest of the 50 were never sent.
    expect(Math.max(...started)).toBeLessThan(15);
  });

  it("the caller's abort ends it as ABORTED, with no request left running", async () => {
    const ac = new AbortController();
    let running = 0;
    const p = sendParallel({
      ...base,
      items: Array.from({ length: 100 }, (_, i) => i),
      signal: ac.signal,
      send: async (_n, signal) => {
        running++;
        try {
          await new Promise((resolve, reject) => {
            const t = setTimeout(resolve, 1000);
            signal.addEventListener('abort', () => (clearTimeout(t), reject(Object.assign(new Error('aborted'), { name: 'AbortError' }))), { once: true });
          });
        } finally {
          running--;
        }
      },
    });
    await tick(20);
    ac.abort();
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FarmError);
    expect(err).toMatchObject({ code: 'ABORTED' });
    expect(running).toBe(0);
  });
});
