// SHA-256 of a file as it is received, holes included: on the receiving thread, or in a worker
// thread. Hashing is the largest CPU cost of a sparse fetch: every byte of the apparent size goes
// through it, holes as zeros (3 GiB of zeros for a 4 GiB image holding 1 GiB). In a worker thread
// it runs beside decryption; data goes over through a fixed ring of shared buffers, so the bytes
// in flight are bounded and nothing is allocated per batch. Calls return a promise only when the
// caller has to wait.

import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { FarmError } from '../../src/errors.ts';

export interface Hasher {
  /** Hashes `n` zero bytes (a hole). A promise means: wait before the next call. */
  zeros(n: number): Promise<void> | void;
  /** Hashes these bytes, in order. A promise means: wait before the next call. */
  update(buffers: readonly Buffer[]): Promise<void> | void;
  /** The hex digest; the hasher cannot be used afterwards. */
  digest(): Promise<string>;
  /** Releases resources without a digest (on failure). */
  dispose(): void;
}

// One preallocated buffer of zeros feeds holes to the hash, whatever the hole's size.
const ZERO_CHUNK = 1024 * 1024;

/** Hashes on the calling thread (files with few holes: copying data to a thread costs more). */
export class InlineHasher implements Hasher {
  private readonly hash = createHash('sha256');
  private static readonly ZEROS = Buffer.alloc(ZERO_CHUNK);

  zeros(n: number): void {
    for (let left = n; left > 0; left -= ZERO_CHUNK) {
      this.hash.update(left >= ZERO_CHUNK ? InlineHasher.ZEROS : InlineHasher.ZEROS.subarray(0, left));
    }
  }

  update(buffers: readonly Buffer[]): void {
    for (const b of buffers) this.hash.update(b);
  }

  async digest(): Promise<string> {
    return this.hash.digest('hex');
  }

  dispose(): void {}
}

// Plain JavaScript so the worker runs the same under tsx, node and bundlers. Data arrives in
// shared slots; each slot is handed back when hashed.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hash = createHash('sha256');
const ZEROS = Buffer.alloc(${ZERO_CHUNK});
const slots = workerData.slots.map((sab) => Buffer.from(sab));
parentPort.on('message', (m) => {
  if (m.zeros !== undefined) {
    for (let left = m.zeros; left > 0; left -= ZEROS.length) {
      hash.update(left >= ZEROS.length ? ZEROS : ZEROS.subarray(0, left));
    }
  } else if (m.slot !== undefined) {
    hash.update(slots[m.slot].subarray(0, m.length));
    parentPort.postMessage({ free: m.slot });
  } else if (m.digest) {
    parentPort.postMessage({ digest: hash.digest('hex') });
  }
});
`;

// The ring: data handed to the thread but not hashed yet is at most SLOTS * SLOT_BYTES.
const SLOTS = 4;
const SLOT_BYTES = 4 * 1024 * 1024;

/** Hashes in a worker thread. */
export class ThreadHasher implements Hasher {
  private readonly worker: Worker;
  private readonly slots: Buffer[];
  private readonly free: number[];
  private failure: Error | undefined;
  private waiters: Array<() => void> = [];
  private onDigest: ((hex: string) => void) | undefined;
  private onFailure: ((err: Error) => void) | undefined;

  constructor() {
    const sabs = Array.from({ length: SLOTS }, () => new SharedArrayBuffer(SLOT_BYTES));
    this.slots = sabs.map((sab) => Buffer.from(sab));
    this.free = sabs.map((_, i) => i);
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { slots: sabs } });
    this.worker.on('message', (m: { free?: number; digest?: string }) => {
      if (m.digest !== undefined) this.onDigest?.(m.digest);
      else if (m.free !== undefined) {
        this.free.push(m.free);
        this.wake();
      }
    });
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => this.fail(new FarmError('FETCH', `the hashing thread exited (code ${code})`)));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.onFailure?.(this.failure);
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private check(): void {
    if (this.failure) throw new FarmError('FETCH', `hashing failed: ${this.failure.message}`, { cause: this.failure });
  }

  zeros(n: number): void {
    this.check();
    if (n > 0) this.worker.postMessage({ zeros: n });
  }

  update(buffers: readonly Buffer[]): Promise<void> | void {
    this.check();
    return this.copyIn(buffers, 0, 0);
  }

  /** Copies into free slots and hands each full one over; waits only when no slot is free. */
  private copyIn(buffers: readonly Buffer[], fromBuffer: number, fromByte: number): Promise<void> | void {
    let slot = -1;
    let used = 0;
    for (let i = fromBuffer; i < buffers.length; i++) {
      const b = buffers[i]!;
      for (let at = i === fromBuffer ? fromByte : 0; at < b.length; ) {
        if (slot < 0) {
          const free = this.free.pop();
          if (free === undefined) {
            const [resumeBuffer, resumeByte] = [i, at];
            return this.slotFreed().then(() => this.copyIn(buffers, resumeBuffer, resumeByte));
          }
          slot = free;
          used = 0;
        }
        const n = b.copy(this.slots[slot]!, used, at);
        used += n;
        at += n;
        if (used === SLOT_BYTES) {
          this.worker.postMessage({ slot, length: used });
          slot = -1;
        }
      }
    }
    if (slot >= 0) this.worker.postMessage({ slot, length: used });
  }

  private async slotFreed(): Promise<void> {
    while (this.free.length === 0) {
      this.check();
      await new Promise<void>((r) => this.waiters.push(r));
    }
    this.check();
  }

  async digest(): Promise<string> {
    this.check();
    try {
      return await new Promise<string>((resolve, reject) => {
        this.onDigest = resolve;
        this.onFailure = (err) => reject(new FarmError('FETCH', `hashing failed: ${err.message}`, { cause: err }));
        this.worker.postMessage({ digest: true });
      });
    } finally {
      this.dispose();
    }
  }

  dispose(): void {
    this.onFailure = undefined;
    this.failure ??= new FarmError('FETCH', 'hasher disposed');
    void this.worker.terminate();
  }
}
