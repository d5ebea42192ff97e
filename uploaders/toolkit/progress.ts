// The one progress throttle. Uploads report per block, part or chunk (thousands a second); the
// listener wants a few updates a second, every phase change, and the final state.

import type { UploadProgress } from '../uploader.ts';

export interface ThrottleOptions<P> {
  /** Shortest time between two emits (ms). */
  intervalMs: number;
  /** A change of this key is always emitted (default: the phase, when P has one). */
  key?: (p: P) => string;
  /** A final update (done at or past total) is always emitted. */
  isFinal?: (p: P) => boolean;
  now?: () => number;
}

/** Calls `emit` at most every `intervalMs`, except for key changes, final updates and `force`. */
export function throttle<P>(emit: (p: P) => void, opts: ThrottleOptions<P>): (p: P, force?: boolean) => void {
  const now = opts.now ?? Date.now;
  const key = opts.key ?? ((p: P) => String((p as { phase?: unknown }).phase ?? ''));
  let last = Number.NEGATIVE_INFINITY;
  let lastKey: string | undefined;
  return (p, force = false) => {
    const t = now();
    const k = key(p);
    if (!force && k === lastKey && t - last < opts.intervalMs && !(opts.isFinal?.(p) ?? false)) return;
    last = t;
    lastKey = k;
    emit(p);
  };
}

/** An upload's progress reporter: a total, the bytes sent so far (kept when an update omits
 *  them), and the throttle in front of ctx.onProgress. Without a listener it does nothing. */
export class Progress {
  private sent = 0;
  private readonly emit: ((p: UploadProgress, force?: boolean) => void) | undefined;

  constructor(
    listener: ((p: UploadProgress) => void) | undefined,
    readonly total: number,
    intervalMs = 500,
    now?: () => number,
  ) {
    this.emit = listener && throttle(listener, { intervalMs, isFinal: (p) => p.done >= p.total, ...(now ? { now } : {}) });
  }

  report(done: number, sent: number | undefined, phase: string, force = false): void {
    if (sent !== undefined) this.sent = sent;
    this.emit?.({ done, total: this.total, sent: this.sent, phase }, force);
  }
}
