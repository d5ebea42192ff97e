// The one parallel send loop of sparse uploads (EBS direct blocks, Azure page ranges): items go
// to a p-queue of `concurrency` requests; the loop waits while `readAhead` are queued, so memory
// stays bounded whatever the file's size. The first item that fails (after the SDK's own
// retries) stops the rest: requests cut off by that stop are its casualties, not failures. The
// caller's abort is ABORTED; otherwise the failures are reported by position, first one named.

import { setMaxListeners } from 'node:events';
import PQueue from 'p-queue';
import { FarmError, errorMessage, isAbortError } from '../../src/core/errors.ts';

export interface ParallelSend<T> {
  /** What to send, in file order (an async generator may read ahead and skip holes itself). */
  items: Iterable<T> | AsyncIterable<T>;
  /** Sends one item; `signal` ends on the caller's abort or another item's failure. */
  send: (item: T, signal: AbortSignal) => Promise<void>;
  concurrency: number;
  /** Items queued beyond those running before the loop takes the next one. */
  readAhead: number;
  signal: AbortSignal;
  /** The item's position, for ordering failures. */
  position: (item: T) => number;
  /** Names an item in the message ("block 12", "bytes 0+4194304"). */
  describe: (item: T) => string;
  /** Names the requests in the message ("block(s)", "Put Page request(s)"). */
  requests: string;
}

export async function sendParallel<T>(p: ParallelSend<T>): Promise<void> {
  const stop = new AbortController();
  // Every request in flight listens on it.
  setMaxListeners(p.concurrency + 16, stop.signal);
  const onAbort = () => stop.abort(p.signal.reason);
  p.signal.addEventListener('abort', onAbort, { once: true });
  if (p.signal.aborted) onAbort();
  const failures: Array<{ item: T; error: unknown }> = [];
  const queue = new PQueue({ concurrency: p.concurrency });
  try {
    for await (const item of p.items) {
      if (stop.signal.aborted) break;
      await queue.onSizeLessThan(p.readAhead);
      if (stop.signal.aborted) break;
      queue
        .add(async () => {
          if (!stop.signal.aborted) await p.send(item, stop.signal);
        })
        .catch((error: unknown) => {
          if (stop.signal.aborted && isAbortError(error)) return;
          failures.push({ item, error });
          stop.abort(error);
        });
    }
    await queue.onIdle();
  } finally {
    p.signal.removeEventListener('abort', onAbort);
    queue.clear();
  }
  if (p.signal.aborted) throw new FarmError('ABORTED', 'cancelled');
  if (failures.length > 0) {
    failures.sort((a, b) => p.position(a.item) - p.position(b.item));
    const first = failures[0]!;
    throw new Error(`${failures.length} ${p.requests} failed after retries (first: ${p.describe(first.item)}: ${errorMessage(first.error)})`, {
      cause: first.error,
    });
  }
}
