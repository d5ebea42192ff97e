// Records are replaced atomically (temp file, fsync, rename) so a crash never leaves a torn file.

import { open, rename, rm } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { redactJson } from './redact.ts';

export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dirname(path)); // persist the rename itself
}

/** Makes a rename in `dir` durable: fsync the directory that holds the new name. */
export async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** Every JSON record the farm writes (state, manifests, the service's store) passes here, redacted. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(redactJson(value), null, 2) + '\n');
}

/** A JSON record on disk, replaced atomically on every change. Changes are serialized, so
 *  concurrent writers (arches, triggers) never race, and a failed write leaves the last state. */
export class JsonRecord<T> {
  private chain: Promise<unknown> = Promise.resolve();

  protected constructor(
    readonly path: string,
    private state: T,
  ) {}

  get current(): Readonly<T> {
    return this.state;
  }

  /** Applies a change and writes the file. */
  update(change: (s: T) => void): Promise<void> {
    const next = this.chain.then(async () => {
      const copy = structuredClone(this.state);
      change(copy);
      this.normalize(copy);
      await writeJsonAtomic(this.path, copy);
      this.state = copy;
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Applied to every new state before it is written (e.g. to bound its size). */
  protected normalize(_state: T): void {}
}
