// pollUntil (src/core/poll.ts): backoff, the deadline with a message naming what was awaited,
// cancellation, progress on status changes.

import { describe, expect, it } from 'vitest';
import { FarmError, isAbortError } from '../../src/core/errors.ts';
import { PollTimeout, pollUntil } from '../../src/core/poll.ts';

const never = () => new AbortController().signal;

describe('pollUntil', () => {
  it('polls with backoff until a value comes', async () => {
    let n = 0;
    const v = await pollUntil(async () => (++n >= 3 ? 'done' : undefined), { what: 'x', intervalMs: 1, factor: 1.5, maxIntervalMs: 5, timeoutMs: 1000, signal: never() });
    expect(v).toBe('done');
    expect(n).toBe(3);
  });

  it('gives up at the deadline with a message naming what it waited for and its last status', async () => {
    const start = Date.now();
    let lastCheck = 0;
    const err = await pollUntil(
      async (status) => {
        lastCheck = Date.now() - start;
        status('pending 40%');
        return undefined;
      },
      { what: 'import task import-snap-1 to complete', intervalMs: 5, timeoutMs: 30, signal: never() },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PollTimeout);
    expect(err).toBeInstanceOf(FarmError);
    expect((err as PollTimeout).code).toBe('UPLOAD');
    expect((err as Error).message).toMatch(/^gave up waiting for import task import-snap-1 to complete after \d+ s \(last status: pending 40%\)$/);
    // The last check runs at the deadline, not a delay before it.
    expect(lastCheck).toBeGreaterThanOrEqual(30);
  });

  it('stops on abort, mid-sleep, as ABORTED naming what it waited for', async () => {
    const c = new AbortController();
    const p = pollUntil(async () => undefined, { what: 'image r1 to be available', intervalMs: 10_000, timeoutMs: 60_000, signal: c.signal });
    setTimeout(() => c.abort(), 10);
    const err = await p.catch((e: unknown) => e);
    expect(isAbortError(err)).toBe(true);
    expect(err).toMatchObject({ code: 'ABORTED', message: 'cancelled while waiting for image r1 to be available' });
  });

  it('reports a status only when it changes, and passes a check failure through', async () => {
    const lines: string[] = [];
    const statuses = ['queued', 'queued', 'saving', 'saving'];
    let i = 0;
    const err = await pollUntil(
      async (status) => {
        if (i === statuses.length) throw new Error('Glance put the image in state killed');
        status(statuses[i++]!);
        return undefined;
      },
      { what: 'x', intervalMs: 1, timeoutMs: 5000, signal: never(), onProgress: (s) => lines.push(s) },
    ).catch((e: unknown) => e);
    expect(lines).toEqual(['queued', 'saving']);
    expect((err as Error).message).toBe('Glance put the image in state killed');
  });
});
