// Waiting on VPC images: an import until it settles, a deletion until the image is gone.

import { FarmError } from '../../src/core/errors.ts';
import { PollTimeout, pollUntil, type PollSettings } from '../../src/core/poll.ts';
import { serviceFault, stepError } from './errors.ts';
import type { VpcClient, VpcImage } from './vpc-client.ts';

/** Imports of a few GiB take minutes; an hour means the service is stuck. */
export const IMPORT_POLL: PollSettings = { intervalMs: 5_000, factor: 1.5, maxIntervalMs: 30_000, timeoutMs: 60 * 60_000 };
/** Deletions finish within a minute or two. */
export const DELETE_POLL: PollSettings = { intervalMs: 2_000, factor: 1.5, maxIntervalMs: 10_000, timeoutMs: 10 * 60_000 };

/** What to do about an import's status reason. */
const STATUS_HINTS: Record<string, string> = {
  image_data_corrupted: 'the file is corrupt or not a qcow2: check the artifact with `qemu-img check`',
  image_provisioned_size_unsupported: "the disk's virtual size is over VPC's boot volume limit: build a smaller disk",
  encrypted_data_key_invalid: 'the image cannot be decrypted with the given key',
  encryption_key_deleted: 'the encryption key was deleted',
  encryption_key_disabled: 'the encryption key is disabled',
};

/** Polls until the import settles; `failed` (or any other end state) becomes an error carrying the status reasons. */
export async function waitAvailable(
  vpc: VpcClient,
  region: string,
  image: VpcImage,
  poll: PollSettings,
  signal: AbortSignal,
  secrets: readonly string[],
): Promise<VpcImage> {
  try {
    return await pollUntil(
      async (status) => {
        const img = await vpc.getImage(image.id, signal);
        if (img.status === 'available') return img;
        status(img.status);
        if (img.status === 'pending') return undefined;
        const reasons = (img.status_reasons ?? []).map((r) => `${r.code}: ${r.message}`).join('; ') || 'no reason given';
        const hint = (img.status_reasons ?? []).map((r) => STATUS_HINTS[r.code]).find(Boolean);
        throw new FarmError('UPLOAD', `IBM Cloud ${region}: import of image ${img.name} (${img.id}) ended ${img.status}: ${reasons}`, {
          ...(hint ? { hint } : {}),
        });
      },
      { ...poll, what: `the import of image ${image.name} (${image.id})`, signal },
    );
  } catch (err) {
    if (err instanceof PollTimeout) {
      throw new FarmError('UPLOAD', `IBM Cloud ${region}: ${err.message}`, {
        hint: 'check the image with `ibmcloud is image <id>`; large images can take long, re-run to pick it up',
      });
    }
    throw stepError('import image', region, err, secrets, signal);
  }
}

const gone = (err: unknown) => serviceFault(err).status === 404;

/** Deletes an image and waits until it is gone; a pending import is waited out first (VPC refuses to delete it). */
export async function removeImage(vpc: VpcClient, id: string, poll: PollSettings, signal: AbortSignal): Promise<void> {
  await pollUntil(
    async () => {
      try {
        await vpc.deleteImage(id, signal);
        return true;
      } catch (err) {
        if (gone(err)) return true;
        if (serviceFault(err).status !== 409) throw err;
        try {
          const img = await vpc.getImage(id, signal);
          return img.status === 'deleting' ? true : undefined;
        } catch (e) {
          if (gone(e)) return true;
          throw e;
        }
      }
    },
    { ...poll, what: `VPC to accept the deletion of image ${id}`, signal },
  );
  await pollUntil(
    async () => {
      try {
        await vpc.getImage(id, signal);
        return undefined;
      } catch (err) {
        if (gone(err)) return true;
        throw err;
      }
    },
    { ...poll, what: `image ${id} to be gone`, signal },
  );
}
