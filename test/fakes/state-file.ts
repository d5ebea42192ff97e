// A fake's state kept in one JSON file, so a long-running fake (the lab's, test/fakes/lab-cloud.ts)
// finds its images again after a restart. Writes are debounced and atomic (temp file + rename);
// Map, Set, Date and Buffer values survive the round trip.

import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';

type Tagged = { $map: [unknown, unknown][] } | { $set: unknown[] } | { $date: string } | { $b64: string };

function encode(this: Record<string, unknown>, key: string, value: unknown): unknown {
  // `this[key]` is the value before toJSON (Date and Buffer have one) turned it into something else.
  const raw = this[key];
  if (raw instanceof Map) return { $map: [...raw] };
  if (raw instanceof Set) return { $set: [...raw] };
  if (raw instanceof Date) return { $date: raw.toISOString() };
  if (Buffer.isBuffer(raw)) return { $b64: raw.toString('base64') };
  return value;
}

function decode(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const v = value as Partial<Record<'$map' | '$set' | '$date' | '$b64', unknown>>;
  const keys = Object.keys(v);
  if (keys.length !== 1) return value;
  const t = v as Tagged;
  if ('$map' in t) return new Map(t.$map);
  if ('$set' in t) return new Set(t.$set);
  if ('$date' in t) return new Date(t.$date);
  if ('$b64' in t) return Buffer.from(t.$b64, 'base64');
  return value;
}

/** The saved state, or undefined when there is no file yet. A corrupt file is an error. */
export function readStateFile<T>(path: string): T | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text, decode) as T;
  } catch (err) {
    throw new Error(`fake state file ${path} is not valid JSON (${(err as Error).message}); move it away to start empty`);
  }
}

export class StateFile {
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly path: string,
    private readonly snapshot: () => unknown,
    /** At most one write per this many ms while requests keep coming. */
    private readonly delayMs = 500,
  ) {}

  /** Something may have changed: save soon. */
  touch(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.write().catch((err: unknown) => console.error(`fake: saving ${this.path} failed: ${String(err)}`));
    }, this.delayMs);
    this.timer.unref();
  }

  /** Saves now (pending touch included) and waits for it. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.write();
  }

  private write(): Promise<void> {
    // Serialized: two overlapping writes of the same temp file would interleave.
    this.writing = this.writing.catch(() => {}).then(async () => {
      const tmp = `${this.path}.tmp`;
      await writeFile(tmp, JSON.stringify(this.snapshot(), encode), { mode: 0o600 });
      await rename(tmp, this.path);
    });
    return this.writing;
  }
}
