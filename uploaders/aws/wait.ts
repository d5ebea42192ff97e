// Polling settings shared by the SDK waiters and the import-task poll.

import type { PollSettings } from '../../src/core/poll.ts';

export interface WaitSettings {
  /** First delay between polls (seconds; fractions allowed). */
  minDelaySeconds: number;
  /** Longest delay between polls (seconds). */
  maxDelaySeconds: number;
  /** Give up after this long (seconds). */
  maxWaitSeconds: number;
}

// AMI copies and imports take minutes to an hour on AWS; polls start at 5 s and back off to 30 s.
export const DEFAULT_WAIT: WaitSettings = { minDelaySeconds: 5, maxDelaySeconds: 30, maxWaitSeconds: 2 * 3600 };

/** The same settings for the core's pollUntil (which counts in ms), backing off by 1.5. */
export function pollSettings(w: WaitSettings): PollSettings {
  return { intervalMs: w.minDelaySeconds * 1000, factor: 1.5, maxIntervalMs: w.maxDelaySeconds * 1000, timeoutMs: w.maxWaitSeconds * 1000 };
}
