// The last check of an upload: Glance stored exactly what was sent. Size first, then Glance's own
// sha512 (os_hash_value) against the sha512 computed while streaming.

import { FarmError } from '../../src/core/errors.ts';
import type { GlanceImage } from './glance.ts';

export interface Sent {
  bytes: number;
  /** Lower-case hex. */
  sha512: string;
}

export function verifyStored(image: Pick<GlanceImage, 'size' | 'os_hash_algo' | 'os_hash_value'>, sent: Sent, expectedSize: number): void {
  if (sent.bytes !== expectedSize) {
    throw new FarmError('UPLOAD', `sent ${sent.bytes} bytes but the artifact has ${expectedSize}: did the file change during the upload?`);
  }
  if (image.size !== sent.bytes) {
    throw new FarmError('UPLOAD', `Glance stored ${image.size ?? 'no'} bytes but ${sent.bytes} were sent`);
  }
  if (image.os_hash_algo !== 'sha512' || !image.os_hash_value) {
    throw new FarmError('UPLOAD', `Glance reports no sha512 for the image (os_hash_algo ${image.os_hash_algo ?? 'unset'}), so the upload cannot be verified`, {
      hint: "farm verifies uploads with Glance's sha512, its default hashing_algorithm; ask the cloud's operators about [DEFAULT] hashing_algorithm.",
    });
  }
  if (image.os_hash_value.toLowerCase() !== sent.sha512) {
    throw new FarmError('UPLOAD', "Glance's sha512 of the image differs from the sha512 of the data sent");
  }
}
