// Ordered steps with undo, Packer-style: every step that creates something registers how to
// remove it; on failure the undos run in reverse order and the error names the failed step and
// anything the rollback could not remove.

import { FarmError, errorMessage, isAbortError } from '../../src/core/errors.ts';
import type { JournalEntry } from '../uploader.ts';

// Rollback runs after the caller's signal may have fired, so it gets its own time limit.
const UNDO_TIMEOUT_MS = 5 * 60_000;

interface Undo {
  what: string;
  run: (signal: AbortSignal) => Promise<void>;
  done: boolean;
  /** The journal's record of the object, dropped once the undo removed it. */
  entry: JournalEntry | undefined;
}

export class Steps {
  private readonly undos: Undo[] = [];

  constructor(
    /** Prefix of every message, e.g. "aws-us-east-1". */
    readonly label: string,
    private readonly log: (message: string) => void,
    private readonly signal: AbortSignal,
  ) {}

  /** Runs one named step; its failure becomes a FarmError naming the step. */
  async run<T>(step: string, fn: () => Promise<T>): Promise<T> {
    if (this.signal.aborted) throw new FarmError('ABORTED', `${this.label}: cancelled before ${step}`);
    try {
      return await fn();
    } catch (err) {
      throw this.wrap(step, err);
    }
  }

  wrap(step: string, err: unknown): FarmError {
    if (err instanceof FarmError && err.code !== 'ABORTED') return err;
    if (this.signal.aborted || isAbortError(err)) {
      return new FarmError('ABORTED', `${this.label}: cancelled during ${step}`, { cause: err });
    }
    return new FarmError('UPLOAD', `${this.label}: ${step} failed: ${errorMessage(err)}`, {
      cause: err,
      hint: hintFor(err),
    });
  }

  /** Registers an undo; returns a function that marks it unnecessary (e.g. already cleaned up). */
  onUndo(what: string, run: (signal: AbortSignal) => Promise<void>, entry?: JournalEntry): () => void {
    const u: Undo = { what, run, done: false, entry };
    this.undos.push(u);
    return () => {
      u.done = true;
    };
  }

  /** Runs pending undos in reverse; returns what could not be removed. */
  async rollback(): Promise<string[]> {
    const left: string[] = [];
    const signal = AbortSignal.timeout(UNDO_TIMEOUT_MS);
    for (const u of [...this.undos].reverse()) {
      if (u.done) continue;
      try {
        await u.run(signal);
        u.done = true;
        await u.entry?.drop();
        this.log(`${this.label}: removed ${u.what}`);
      } catch (err) {
        left.push(`${u.what} (${errorMessage(err)})`);
      }
    }
    return left;
  }

  /** Rolls back and rethrows `err` with what was left behind, if anything. */
  async fail(step: string, err: unknown): Promise<never> {
    const wrapped = this.wrap(step, err);
    const left = await this.rollback();
    if (left.length === 0) throw wrapped;
    throw new FarmError(wrapped.code, `${wrapped.message}; cleanup could not remove: ${left.join(', ')}`, {
      cause: err,
      hint: `Remove the listed resources by hand (aws ec2 deregister-image / delete-snapshot, aws s3 rm).${wrapped.hint ? ` ${wrapped.hint}` : ''}`,
    });
  }
}

function hintFor(err: unknown): string | undefined {
  const name = (err as { name?: string }).name ?? '';
  if (/AuthFailure|UnrecognizedClient|InvalidClientTokenId|SignatureDoesNotMatch|InvalidSignature|ExpiredToken|CredentialsProviderError/.test(name)) {
    return 'Check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or `aws sso login`).';
  }
  if (/UnauthorizedOperation|AccessDenied/.test(name)) {
    return 'The AWS identity lacks a permission this step needs (see the message for the action).';
  }
  if (name === 'InvalidAMIName.Duplicate') return 'An image with this name exists already: pick a new name or reuse the existing image.';
  return undefined;
}
