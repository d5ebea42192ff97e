// Digests of local source files for the build key: a file's content, and the build context's
// tree as the build sends it (workers/podman/context.ts walks it for both). Contents are streamed
// through the hash, so a context holding large files costs disk reads, not memory.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { FarmError, errorMessage } from '../core/errors.ts';
import { ContextDigest, walkContext, type ContextSource, type ContextSummary } from '../../workers/podman/context.ts';

export async function fileDigest(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash, signal ? { signal } : {});
  return 'sha256:' + hash.digest('hex');
}

/** The digest of what a build sends from the context (the same walk the tar is made from). */
export async function contextDigest(source: ContextSource, signal: AbortSignal): Promise<ContextSummary> {
  const walk = await walkContext(source, signal);
  const digest = new ContextDigest();
  for await (const entry of walk.entries) {
    if (entry.kind !== 'file') {
      digest.add(entry);
      continue;
    }
    const content = await fileDigest(entry.abs, signal).catch((err: unknown) => {
      if (signal.aborted) throw new FarmError('ABORTED', 'cancelled', { cause: err });
      throw new FarmError('INVENTORY', `cannot read ${entry.abs} in the build context: ${errorMessage(err)}`, {
        hint: 'every file in the context must be readable by the user running farm (or listed in .containerignore)',
      });
    });
    digest.add(entry, content);
  }
  return digest.summary(walk.ignoreFile);
}
