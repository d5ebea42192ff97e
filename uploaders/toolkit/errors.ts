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
  /** The new error's cause (default the failure; pass a redacted summary when the failure holds secrets). */
  cause?: unknown;
}

const defaultFormat = (step: string, description: string) => `${step} failed: ${description}`;

/**
 * The FarmError for a failed step. A FarmError other than ABORTED is kept (it already says what
 * failed) unless redaction changes its text; a cancellation is ABORTED "cancelled during <step>".
 */
export function wrapError(err: unknown, o: WrapOptions): FarmError {
  const redact = o.redact ?? NO_REDACT;
  const prefix = o.where ? `${o.where}: ` : '';
  if (err instanceof FarmError && err.code !== 'ABORTED') return redacted(err, redact);
  if (o.signal?.aborted || isAbortError(err)) {
    return new FarmError('ABORTED', redact(`${prefix}cancelled during ${o.step}`), { cause: err });
  }
  const description = (o.describe ?? errorMessage)(err);
  const hint = o.hint?.(err);
  return new FarmError('UPLOAD', redact(`${prefix}${(o.format ?? defaultFormat)(o.step, description)}`), {
    cause: o.cause ?? err,
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
