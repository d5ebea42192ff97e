// Waiting that cancellation can cut short: pollers (AWS imports, Glance status) sleep through this.

import { setTimeout as delay } from 'node:timers/promises';
import { FarmError } from './errors.ts';

/** Sleeps `ms`; rejects with FarmError('ABORTED') as soon as `signal` fires. */
export async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, { signal });
  } catch (err) {
    throw new FarmError('ABORTED', 'cancelled', { cause: err });
  }
}
