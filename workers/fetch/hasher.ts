// SHA-256 of the file being received, computed from the file itself, behind the writer.
//
// A worker thread reads back each extent once it has been written (from the page cache) and feeds
// the holes before it as zeros from memory, so the digest covers exactly what landed on disk, at
// its offsets. The receiving thread never waits for the hash: on a sparse image the thread spends
// most of its time on zeros (3 GiB of them for a 4 GiB image holding 1 GiB), and a hasher fed from
// the stream made the transfer stall at every hole. Memory stays one read buffer whatever the lag;
// the lag only shows at the end, where digest() waits for the thread to catch up.

import { Worker } from 'node:worker_threads';
import { FarmError } from '../../src/core/errors.ts';

export interface Hasher {
  /** Bytes [offset, offset + length) of the file are written. Extents come in file order. */
  written(offset: number, length: number): void;
  /** The hex sha256 of the file's first `size` bytes, everything not written being a hole. */
  digest(size: number): Promise<string>;
  /** Stops the thread (on failure, or after digest). */
  dispose(): void;
}

const CHUNK = 4 * 1024 * 1024;

// Plain JavaScript so the thread runs the same under tsx, node and bundlers.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { readSync } = require('node:fs');
const { createHash } = require('node:crypto');
const hash = createHash('sha256');
const fd = workerData.fd;
const ZEROS = Buffer.alloc(${CHUNK});
const buf = Buffer.allocUnsafe(${CHUNK});
let hashed = 0;
function zerosTo(end) {
  while (hashed < end) {
    const n = Math.min(end - hashed, ZEROS.length);
    hash.update(n === ZEROS.length ? ZEROS : ZEROS.subarray(0, n));
    hashed += n;
  }
}
parentPort.on('message', (m) => {
  try {
    if (m.offset !== undefined) {
      if (m.offset < hashed) throw new Error('extent at ' + m.offset + ' comes after offset ' + hashed);
      zerosTo(m.offset);
      const end = m.offset + m.length;
      while (hashed < end) {
        const n = readSync(fd, buf, 0, Math.min(end - hashed, buf.length), hashed);
        if (n <= 0) throw new Error('the file ends at ' + hashed + ', before the written extent ends at ' + end);
        hash.update(buf.subarray(0, n));
        hashed += n;
      }
    } else if (m.size !== undefined) {
      if (m.size < hashed) throw new Error('size ' + m.size + ' is below the hashed offset ' + hashed);
      zerosTo(m.size);
      parentPort.postMessage({ digest: hash.digest('hex') });
    }
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
  }
});
`;

/** Hashes the file open as `fd` in a worker thread, following the writer's extents. */
export class FileHasher implements Hasher {
  private readonly worker: Worker;
  private failure: string | undefined;
  private settle: { resolve: (hex: string) => void; reject: (err: Error) => void } | undefined;
  private disposed = false;

  constructor(fd: number) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { fd } });
    this.worker.on('message', (m: { digest?: string; error?: string }) => {
      if (m.error !== undefined) this.fail(m.error);
      else if (m.digest !== undefined) this.settle?.resolve(m.digest);
    });
    this.worker.on('error', (err) => this.fail(err.message));
    this.worker.on('exit', (code) => {
      if (!this.disposed) this.fail(`the hashing thread exited (code ${code})`);
    });
  }

  private fail(message: string): void {
    this.failure ??= message;
    this.settle?.reject(new FarmError('FETCH', `hashing the received file failed: ${this.failure}`));
  }

  written(offset: number, length: number): void {
    if (this.disposed) throw new FarmError('FETCH', 'the hasher was disposed');
    if (length > 0 && this.failure === undefined) this.worker.postMessage({ offset, length });
  }

  async digest(size: number): Promise<string> {
    if (this.disposed) throw new FarmError('FETCH', 'the hasher was disposed');
    try {
      return await new Promise<string>((resolve, reject) => {
        this.settle = { resolve, reject };
        if (this.failure !== undefined) return this.fail(this.failure);
        this.worker.postMessage({ size });
      });
    } finally {
      this.dispose();
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    void this.worker.terminate();
  }
}
