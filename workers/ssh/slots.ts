// A semaphore over one connection's channels: sshd allows a fixed number of sessions per
// connection (OpenSSH's MaxSessions, 10 by default), and a channel asked for beyond it is refused.

import { FarmError, throwIfAborted } from '../../src/core/errors.ts';

/** Counts channels so the farm never asks sshd for more sessions than it allows. */
export class ChannelSlots {
  private used = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly max: number) {}

  async acquire(signal: AbortSignal | undefined): Promise<void> {
    throwIfAborted(signal);
    if (this.used < this.max) {
      this.used++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new FarmError('ABORTED', 'cancelled'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(grant);
    });
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next(); // the slot passes straight to the next waiter
    else this.used--;
  }
}
