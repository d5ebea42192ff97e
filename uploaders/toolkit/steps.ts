// Packer-style steps: an upload runs named steps in order, and every step that creates something
// registers how to remove it. On failure the cleanups run in reverse order (the AMI before its
// snapshot, the image before its staging object) under their own deadline, since the caller's
// signal may be why we fail, and the error the caller gets is the original failure with anything
// the cleanup could not remove reported beside it.

import { FarmError, errorMessage } from '../../src/core/errors.ts';

// Cleanups run after the caller's signal may have fired, so they get their own time limit.
export const CLEANUP_TIMEOUT_MS = 5 * 60_000;

/** What a cleanup logs: a line of its own, nothing (`false`: nothing was there), or by default
 *  "removed <what>". */
export type CleanupOutcome = string | false | void;

/** The journal's record of an object (uploaders/uploader.ts JournalEntry), dropped once it is gone. */
export interface Droppable {
  drop(): Promise<void>;
}

export interface Cleanup {
  /** The object no longer needs removing (consumed, removed already, or kept on success). */
  dismiss(): void;
}

export interface CleanupFailure {
  what: string;
  error: unknown;
}

export interface StepsOptions {
  signal: AbortSignal;
  log: (message: string) => void;
  /** Turns a step's failure into the FarmError the upload throws (see toolkit/errors.ts). */
  wrap: (step: string, err: unknown) => FarmError;
  /** Limit for all cleanups together (default CLEANUP_TIMEOUT_MS). */
  cleanupTimeoutMs?: number;
  /** How to remove by hand what cleanup left, added to the error's hint. */
  leftoverHint?: string;
  /** Redacts cleanup failures' messages. */
  redact?: (text: string) => string;
  /** Added to the failure's message, in parentheses, when cleanups ran and removed everything. */
  removedNote?: string;
}

/** The original failure, with what the cleanup could not remove beside it. */
export class StepsError extends FarmError {
  constructor(
    readonly failure: FarmError,
    readonly leftovers: readonly CleanupFailure[],
    redact: (text: string) => string = (s) => s,
    leftoverHint?: string,
  ) {
    const left = leftovers.map((l) => `${l.what} (${redact(errorMessage(l.error))})`).join(', ');
    const hint = [leftoverHint, failure.hint].filter(Boolean).join(' ');
    super(failure.code, `${failure.message}; cleanup could not remove: ${left}`, { cause: failure, ...(hint ? { hint } : {}) });
    this.name = 'StepsError';
  }
}

interface Pending {
  what: string;
  undo: (signal: AbortSignal) => Promise<CleanupOutcome>;
  entry: Droppable | undefined;
  done: boolean;
}

export class Steps {
  private readonly pending: Pending[] = [];
  /** Cleanups that ran and succeeded. */
  private removed = 0;
  /** Errors `run` wrapped already: `fail` throws them as they are. */
  private readonly wrapped = new WeakSet<object>();
  /** The step running last, named in the error of a failure outside `run`. */
  current = 'start';

  constructor(private readonly opts: StepsOptions) {}

  get signal(): AbortSignal {
    return this.opts.signal;
  }

  /** Runs one named step; its failure becomes the wrapped FarmError naming it. */
  async run<T>(step: string, fn: () => Promise<T>): Promise<T> {
    this.current = step;
    try {
      if (this.opts.signal.aborted) throw new FarmError('ABORTED', 'cancelled');
      return await fn();
    } catch (err) {
      throw this.wrap(step, err);
    }
  }

  private wrap(step: string, err: unknown): FarmError {
    if (typeof err === 'object' && err !== null && this.wrapped.has(err)) return err as FarmError;
    const e = this.opts.wrap(step, err);
    this.wrapped.add(e);
    return e;
  }

  /** Registers how to remove what a step is about to create (and its journal record). */
  onCleanup(what: string, undo: (signal: AbortSignal) => Promise<CleanupOutcome>, entry?: Droppable): Cleanup {
    const p: Pending = { what, undo, entry, done: false };
    this.pending.push(p);
    return {
      dismiss: () => {
        p.done = true;
      },
    };
  }

  /** Runs the pending cleanups, last registered first; returns what could not be removed. */
  async cleanup(): Promise<CleanupFailure[]> {
    const left: CleanupFailure[] = [];
    const signal = AbortSignal.timeout(this.opts.cleanupTimeoutMs ?? CLEANUP_TIMEOUT_MS);
    for (const p of [...this.pending].reverse()) {
      if (p.done) continue;
      try {
        const outcome = await p.undo(signal);
        p.done = true;
        this.removed++;
        await p.entry?.drop();
        if (outcome !== false) this.opts.log(outcome || `removed ${p.what}`);
      } catch (error) {
        left.push({ what: p.what, error });
      }
    }
    return left;
  }

  /** Cleans up and throws the wrapped failure, with what is left beside it. Await it (`return
   *  await steps.fail(err)`) where a `finally` closes connections the cleanups still need. */
  async fail(err: unknown, step = this.current): Promise<never> {
    const failure = this.wrap(step, err);
    const left = await this.cleanup();
    if (left.length === 0) {
      const note = this.opts.removedNote;
      if (!note || this.removed === 0) throw failure;
      throw new FarmError(failure.code, `${failure.message} (${note})`, { cause: failure, ...(failure.hint ? { hint: failure.hint } : {}) });
    }
    throw new StepsError(failure, left, this.opts.redact, this.opts.leftoverHint);
  }
}

/** Runs `body` with a fresh Steps; on any failure its cleanups run before the error is thrown. */
export async function runSteps<T>(opts: StepsOptions, body: (steps: Steps) => Promise<T>): Promise<T> {
  const steps = new Steps(opts);
  try {
    return await body(steps);
  } catch (err) {
    return await steps.fail(err);
  }
}

/**
 * Runs `fn` for every item at once, all or nothing: the first failure aborts the signal the
 * others run under, and once all have settled the first real failure is thrown (not the
 * cancellations it caused). An abort of `signal` itself rejects with ABORTED.
 */
export async function allOrNothing<I, R>(items: readonly I[], fn: (item: I, signal: AbortSignal) => Promise<R>, signal: AbortSignal): Promise<R[]> {
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) stop.abort(signal.reason);
  let first: { error: unknown } | undefined;
  try {
    const settled = await Promise.allSettled(
      items.map(async (item) => {
        try {
          return await fn(item, stop.signal);
        } catch (error) {
          // The first failure is the cause; the ones after it are mostly its cancellations.
          first ??= { error };
          stop.abort(error);
          throw error;
        }
      }),
    );
    if (signal.aborted) throw new FarmError('ABORTED', 'cancelled', first ? { cause: first.error } : {});
    if (first) throw first.error;
    return settled.map((s) => (s as PromiseFulfilledResult<R>).value);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
