// How the AWS uploader words a failed step: the toolkit's wrapping, prefixed with the target (the
// message is printed apart from the stage's log lines too), with a hint picked by the SDK
// error's name. Messages of the AWS SDK carry no key material, so nothing needs masking.

import type { FarmError } from '../../src/core/errors.ts';
import { wrapError } from '../toolkit/errors.ts';

/** Rolled back but not removed: what to run by hand. */
export const AWS_LEFTOVER_HINT = 'Remove the listed resources by hand (aws ec2 deregister-image / delete-snapshot, aws s3 rm).';

export function awsWrap(label: string, signal: AbortSignal): (step: string, err: unknown) => FarmError {
  return (step, err) => wrapError(err, { step, where: label, signal, hint: hintFor });
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
