// Bounded polling with backoff: image imports take minutes, deletions seconds. Every wait has a
// deadline and honours the AbortSignal.

import { setTimeout as sleep } from 'node:timers/promises';

export interface PollOptions {
  /** First delay between polls (ms). */
  initialMs: number;
  /** Longest delay between polls (ms). */
  maxMs: number;
  /** Give up after this long (ms). */
  timeoutMs: number;
}

/** Imports of a few GiB take minutes; an hour means the service is stuck. */
export const IMPORT_POLL: PollOptions = { initialMs: 5_000, maxMs: 30_000, timeoutMs: 60 * 60_000 };
/** Deletions finish within a minute or two. */
export const DELETE_POLL: PollOptions = { initialMs: 2_000, maxMs: 10_000, timeoutMs: 10 * 60_000 };

export class PollTimeout extends Error {
  constructor(readonly waitedMs: number) {
    super(`gave up after ${Math.round(waitedMs / 1000)} s`);
    this.name = 'PollTimeout';
  }
}

/**
 * Calls `check` until it returns a value (not undefined), sleeping with ×1.5 backoff in between.
 * Throws PollTimeout at the deadline; an abort rejects with the signal's AbortError.
 */
export async function pollUntil<T>(check: () => Promise<T | undefined>, opts: PollOptions, signal: AbortSignal): Promise<T> {
  const start = Date.now();
  let delay = opts.initialMs;
  for (;;) {
    signal.throwIfAborted();
    const value = await check();
    if (value !== undefined) return value;
    const waited = Date.now() - start;
    if (waited >= opts.timeoutMs) throw new PollTimeout(waited);
    await sleep(Math.min(delay, opts.timeoutMs - waited), undefined, { signal });
    delay = Math.min(opts.maxMs, Math.ceil(delay * 1.5));
  }
}
