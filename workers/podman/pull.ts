// The builder image's pull policy, as podman run --pull=always|missing|never|newer.

import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { FarmError } from '../../src/core/errors.ts';
import { followJsonStream } from './json-stream.ts';

export async function imagePresent(docker: Docker, ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

export async function ensureBuilderImage(
  docker: Docker,
  ref: string,
  policy: 'always' | 'missing' | 'never' | 'newer',
  signal: AbortSignal,
  onLine: (line: string) => void,
): Promise<void> {
  const present = await imagePresent(docker, ref);
  if (policy === 'never' || (policy === 'missing' && present)) {
    if (!present) {
      throw new FarmError('BUILD', `builder image ${ref} is not on the worker and pull is 'never'`, {
        hint: 'load it on the worker (podman pull/load) or set builder.pull to missing or newer',
      });
    }
    return;
  }
  try {
    onLine(`pulling ${ref}`);
    const stream = (await docker.pull(ref, { abortSignal: signal } as object)) as Readable;
    await followJsonStream(stream, signal, (msg) => {
      if (msg.error) throw new Error(String(msg.error));
    });
  } catch (err) {
    if (signal.aborted) throw new FarmError('ABORTED', 'cancelled');
    // 'newer' keeps a present image when the registry cannot be reached, as podman does.
    if (policy === 'newer' && present) {
      onLine(`warning: could not check for a newer ${ref} (${(err as Error).message}); using the local one`);
      return;
    }
    throw new FarmError('BUILD', `cannot pull builder image ${ref}: ${(err as Error).message}`, {
      hint: 'check the worker reaches the registry, or pre-load the image and set builder.pull: never',
    });
  }
}
