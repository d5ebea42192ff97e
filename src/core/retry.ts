// The one retry wrapper (over p-retry): exponential backoff, a predicate for what is worth another
// attempt, and cancellation that wins over everything: an aborted signal ends the retries at once
// and rejects with FarmError('ABORTED'), never with the last attempt's error.

import pRetry from 'p-retry';
import { FarmError } from './errors.ts';

export interface RetrySettings {
  /** Attempts after the first. */
  retries: number;
  /** Delay before the first retry (ms). */
  minTimeoutMs: number;
  /** Longest delay (ms; default no bound). */
  maxTimeoutMs?: number;
  /** Growth of the delay per retry (default 2). */
  factor?: number;
  /** Spread delays by a random factor 1..2 so parallel callers do not retry in step. */
  randomize?: boolean;
}

export interface RetryOptions extends RetrySettings {
  /** What is attempted, for the cancellation message: "delete volume x". */
  what: string;
  signal?: AbortSignal;
  /** Whether this failure is worth another attempt (default: every failure). */
  retryable?: (err: Error) => boolean;
  /** Called before each retry with the failure that caused it. */
  onRetry?: (err: Error, attempt: number, retriesLeft: number) => void;
}

/**
 * Runs `fn(attempt)` (attempt counts from 1) until it succeeds, a failure is not retryable, or the
 * retries are spent; then rejects with the last failure itself. Non-Error throws are wrapped so
 * the predicate always sees an Error.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const { signal } = opts;
  if (signal?.aborted) throw cancelled(opts.what);
  try {
    return await pRetry(
      async (attempt) => {
        try {
          return await fn(attempt);
        } catch (err) {
          // p-retry never retries a plain TypeError; a thrown non-Error is made one it can judge.
          throw err instanceof Error ? err : new Error(String(err), { cause: err });
        }
      },
      {
        retries: opts.retries,
        minTimeout: opts.minTimeoutMs,
        ...(opts.maxTimeoutMs !== undefined ? { maxTimeout: opts.maxTimeoutMs } : {}),
        factor: opts.factor ?? 2,
        randomize: opts.randomize ?? false,
        ...(signal ? { signal } : {}),
        shouldRetry: ({ error, attemptNumber, retriesLeft }) => {
          if (signal?.aborted) return false;
          if (opts.retryable && !opts.retryable(error)) return false;
          opts.onRetry?.(error, attemptNumber, retriesLeft);
          return true;
        },
      },
    );
  } catch (err) {
    if (signal?.aborted) throw cancelled(opts.what, err);
    throw err;
  }
}

function cancelled(what: string, cause?: unknown): FarmError {
  return new FarmError('ABORTED', `${what}: cancelled`, cause === undefined ? {} : { cause });
}
