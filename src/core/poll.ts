// Waiting for a remote state, bounded: image imports, snapshot completion, Glance's `active`,
// deletions. Every wait has a deadline, honours the AbortSignal, and says what it waited for when
// it gives up; the check may report a status line, which reaches `onProgress` when it changes.

import { FarmError, type ErrorCode } from './errors.ts';
import { sleep } from './sleep.ts';

export interface PollSettings {
  /** First delay between checks (ms). */
  intervalMs: number;
  /** Each delay is the previous one times this (default 1: a fixed interval). */
  factor?: number;
  /** Longest delay between checks (ms; default: no bound beyond the deadline). */
  maxIntervalMs?: number;
  /** Give up this long after the first check (ms). */
  timeoutMs: number;
}

export interface PollOptions extends PollSettings {
  /** What is awaited, for messages: "import task import-snap-1 to complete". */
  what: string;
  signal: AbortSignal;
  /** Called with the check's status line whenever it changes (the first one included). */
  onProgress?: (status: string, elapsedMs: number) => void;
  /** Code of the PollTimeout (default UPLOAD: uploaders are the pollers). */
  timeoutCode?: ErrorCode;
}

/** The deadline passed; `what`, how long and the last status are in the message. */
export class PollTimeout extends FarmError {
  constructor(
    readonly what: string,
    readonly waitedMs: number,
    readonly lastStatus: string | undefined,
    code: ErrorCode = 'UPLOAD',
  ) {
    super(code, `gave up waiting for ${what} after ${Math.round(waitedMs / 1000)} s${lastStatus ? ` (last status: ${lastStatus})` : ''}`);
    this.name = 'PollTimeout';
  }
}

/**
 * Calls `check` until it returns a value (anything but undefined). The first check runs at once,
 * the last one at the deadline; delays grow by `factor` up to `maxIntervalMs`. A check that
 * throws ends the wait with its error (a failed import is not worth waiting on). Abort rejects
 * with FarmError('ABORTED') naming what was awaited.
 */
export async function pollUntil<T>(check: (status: (line: string) => void) => Promise<T | undefined>, opts: PollOptions): Promise<T> {
  const start = Date.now();
  const factor = opts.factor ?? 1;
  let delay = opts.intervalMs;
  let last: string | undefined;
  const status = (line: string) => {
    if (line === last) return;
    last = line;
    opts.onProgress?.(line, Date.now() - start);
  };
  for (;;) {
    if (opts.signal.aborted) throw cancelled(opts.what);
    const value = await check(status);
    if (value !== undefined) return value;
    const waited = Date.now() - start;
    if (waited >= opts.timeoutMs) throw new PollTimeout(opts.what, waited, last, opts.timeoutCode);
    try {
      await sleep(Math.min(delay, opts.timeoutMs - waited), opts.signal);
    } catch (err) {
      throw cancelled(opts.what, err);
    }
    delay = Math.ceil(delay * factor);
    if (opts.maxIntervalMs !== undefined) delay = Math.min(delay, opts.maxIntervalMs);
  }
}

function cancelled(what: string, cause?: unknown): FarmError {
  return new FarmError('ABORTED', `cancelled while waiting for ${what}`, cause === undefined ? {} : { cause });
}
