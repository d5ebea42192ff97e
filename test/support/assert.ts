// Small assertions shared by test files.

import { execFileSync } from 'node:child_process';
import { expect } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';

/** The FarmError a promise rejects with; fails the test when it resolves or throws anything else. */
export async function rejection(p: Promise<unknown>): Promise<FarmError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(FarmError);
    return err as FarmError;
  }
  throw new Error('expected a rejection');
}

/** Byte-for-byte equality of two files, by cmp (independent of the code under test). */
export function identical(a: string, b: string): boolean {
  try {
    execFileSync('cmp', ['-s', a, b]);
    return true;
  } catch {
    return false;
  }
}
