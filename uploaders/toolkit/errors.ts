// One way for uploaders to turn a failure into the FarmError they throw: a cancellation becomes
// ABORTED (whatever the SDK wrapped it in), anything else UPLOAD naming where and which step
// failed, and every message and hint passes through the kind's redaction so secrets never reach
// a log, a record or the terminal.

import { FarmError, errorMessage, isAbortError } from '../../src/core/errors.ts';

/** Masks secrets in a text (the kind's registry of its credentials and tokens). */
export type Redact = (text: string) => string;

export const NO_REDACT: Redact = (text) => text;

export interface WrapOptions {
  /** The step that failed: "RegisterImage", "upload to COS". */
  step: string;
  /** What the message starts with, naming the target or region ("aws-us-east-1", "IBM Cloud
   *  eu-de"): errors are printed apart from the stage's log lines too. */
  where?: string;
  redact?: Redact;
  /** The upload's signal: SDKs rewrap their cancellation, so an aborted signal is the witness. */
  signal?: AbortSignal;
  /** The failure in words (default: its message). */
  describe?: (err: unknown) => string;
  /** What the user can do about it. */
  hint?: (err: unknown) => string | undefined;
  /** The message from step and description (default "<step> failed: <description>"). */
  format?: (step: string, description: string) => string;
  /** The new error's cause (default the failure; a redacted summary, or undefined for none, when
   *  the failure may hold secrets). */
  cause?: unknown;
  /** Word a FarmError like any failure too (keeping its code and hint), for kinds whose inner
   *  errors do not name the target. */
  prefixFarmErrors?: boolean;
}

const defaultFormat = (step: string, description: string) => `${step} failed: ${description}`;

/**
 * The FarmError for a failed step. A cancellation (by the error, or by the signal having fired)
 * is ABORTED "cancelled during <step>"; a FarmError is kept (it already says what failed) unless
 * redaction changes its text.
 */
export function wrapError(err: unknown, o: WrapOptions): FarmError {
  const redact = o.redact ?? NO_REDACT;
  const cause = 'cause' in o ? o.cause : err;
  const prefix = o.where ? `${o.where}: ` : '';
  // Once the upload is cancelled, whatever failed failed because of it.
  if (o.signal?.aborted || isAbortError(err)) {
    return new FarmError('ABORTED', redact(`${prefix}cancelled during ${o.step}`), { cause });
  }
  if (err instanceof FarmError) {
    if (!o.prefixFarmErrors) return redacted(err, redact);
    const message = redact(`${prefix}${(o.format ?? defaultFormat)(o.step, err.message)}`);
    return new FarmError(err.code, message, { cause, ...(err.hint ? { hint: redact(err.hint) } : {}) });
  }
  const description = (o.describe ?? errorMessage)(err);
  const hint = o.hint?.(err);
  return new FarmError('UPLOAD', redact(`${prefix}${(o.format ?? defaultFormat)(o.step, description)}`), {
    cause,
    ...(hint ? { hint: redact(hint) } : {}),
  });
}

/** The error itself when redaction leaves its text alone, else a copy with the text masked. */
export function redacted(err: FarmError, redact: Redact): FarmError {
  const message = redact(err.message);
  const hint = err.hint === undefined ? undefined : redact(err.hint);
  if (message === err.message && hint === err.hint) return err;
  return new FarmError(err.code, message, { cause: err, ...(hint ? { hint } : {}) });
}
