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

export interface Deadline {
  /** The time ran out (and `onExpire` ran). */
  readonly expired: boolean;
  clear(): void;
}

/** Calls `onExpire` once after `ms` (never without `ms`), unless cleared first. */
export function deadline(ms: number | undefined, onExpire: () => void): Deadline {
  let expired = false;
  const timer =
    ms === undefined
      ? undefined
      : setTimeout(() => {
          expired = true;
          onExpire();
        }, ms);
  return {
    get expired() {
      return expired;
    },
    clear: () => clearTimeout(timer),
  };
}
