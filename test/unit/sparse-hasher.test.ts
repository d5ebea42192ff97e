import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FarmError } from '../../src/errors.ts';
import { FileHasher } from '../../workers/fetch/hasher.ts';
import { followFile } from '../../workers/fetch/receive.ts';
import { spawn } from 'node:child_process';

const MiB = 1024 * 1024;
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'farm-hasher-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `extents` into a new file (holes between them) and returns it open, read-write. */
async function fileWith(name: string, extents: Array<{ offset: number; data: Buffer }>): Promise<FileHandle> {
  const fh = await open(join(dir, name), 'w+');
  for (const e of extents) await fh.write(e.data, 0, e.data.length, e.offset);
  return fh;
}

/** sha256 of `size` bytes: zeros, with the extents laid over them. */
function reference(size: number, extents: Array<{ offset: number; data: Buffer }>): string {
  const whole = Buffer.alloc(size);
  for (const e of extents) e.data.copy(whole, e.offset);
  return createHash('sha256').update(whole).digest('hex');
}

describe('FileHasher', () => {
  it('hashes written extents read back from the file, and everything else as zeros', async () => {
    const extents = [
      { offset: 0, data: randomBytes(1000) },
      { offset: 1000, data: randomBytes(3) }, // right after the first: no hole between
      { offset: 5 * MiB + 17, data: randomBytes(2 * MiB) },
      { offset: 9 * MiB, data: randomBytes(9 * MiB + 5) }, // longer than the thread's read buffer
    ];
    const size = 20 * MiB; // a trailing hole
    const fh = await fileWith('mixed.raw', extents);
    try {
      const h = new FileHasher(fh.fd);
      for (const e of extents) h.written(e.offset, e.data.length);
      expect(await h.digest(size)).toBe(reference(size, extents));
    } finally {
      await fh.close();
    }
  });

  it('reads the bytes on disk, not what it was told: a changed byte changes the digest', async () => {
    const data = randomBytes(64 * 1024);
    const fh = await fileWith('changed.raw', [{ offset: 4096, data }]);
    try {
      await fh.write(Buffer.from([data[10]! ^ 0xff]), 0, 1, 4096 + 10);
      const h = new FileHasher(fh.fd);
      h.written(4096, data.length);
      expect(await h.digest(4096 + data.length)).not.toBe(reference(4096 + data.length, [{ offset: 4096, data }]));
    } finally {
      await fh.close();
    }
  });

  it('the hash of an empty file and of a file that is one hole', async () => {
    const fh = await fileWith('empty.raw', []);
    try {
      expect(await new FileHasher(fh.fd).digest(0)).toBe(createHash('sha256').digest('hex'));
      expect(await new FileHasher(fh.fd).digest(3 * MiB)).toBe(reference(3 * MiB, []));
    } finally {
      await fh.close();
    }
  });

  it('fails when a written extent is not in the file, or extents go backwards', async () => {
    const fh = await fileWith('short.raw', [{ offset: 0, data: randomBytes(100) }]);
    try {
      const past = new FileHasher(fh.fd);
      past.written(0, 200); // the file holds 100 bytes
      const err = await past.digest(200).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FarmError);
      expect((err as FarmError).message).toMatch(/hashing the received file failed: the file ends at 100/);

      const backwards = new FileHasher(fh.fd);
      backwards.written(50, 50);
      backwards.written(0, 10);
      await expect(backwards.digest(100)).rejects.toThrow(/comes after offset 100/);
    } finally {
      await fh.close();
    }
  });

  it('refuses work once disposed', async () => {
    const fh = await fileWith('disposed.raw', [{ offset: 0, data: randomBytes(10) }]);
    try {
      const h = new FileHasher(fh.fd);
      h.dispose();
      expect(() => h.written(0, 10)).toThrow(/disposed/);
      await expect(h.digest(10)).rejects.toThrow(/disposed/);
    } finally {
      await fh.close();
    }
  });
});

describe('followFile', () => {
  /** A local writer process whose stdout is the file, as the reader's is in a dense fetch. */
  function writer(fd: number, script: string): Promise<void> {
    const child = spawn('sh', ['-c', script], { stdio: ['ignore', fd, 'inherit'] });
    return new Promise((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`)))));
  }

  it('hashes what another process writes, as it grows, and reports progress to the end', async () => {
    const fh = await open(join(dir, 'followed.bin'), 'w+');
    try {
      const done = writer(fh.fd, 'head -c 3000000 /dev/urandom; sleep 0.2; head -c 5000000 /dev/urandom');
      const seen: number[] = [];
      const r = await followFile(fh, 8_000_000, done, (p) => seen.push(p.reached));
      const bytes = readFileSync(join(dir, 'followed.bin'));
      expect(r).toMatchObject({ size: 8_000_000, dataBytes: 8_000_000, sparse: false });
      expect(r.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(seen.length).toBeGreaterThan(1);
      expect(seen.at(-1)).toBe(8_000_000);
    } finally {
      await fh.close();
    }
  });

  it('fails when the writer ends before the file is complete, or fails itself', async () => {
    const fh = await open(join(dir, 'short.bin'), 'w+');
    try {
      await expect(followFile(fh, 2_000_000, writer(fh.fd, 'head -c 1000000 /dev/urandom'))).rejects.toThrow(
        /1000000 bytes of the file missing \(1000000 of 2000000 arrived\)/,
      );
      await expect(followFile(fh, 10, writer(fh.fd, 'exit 3'))).rejects.toThrow(/exit 3/);
    } finally {
      await fh.close();
    }
  });
});
