import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { FileHasher } from '../../workers/fetch/hasher.ts';
import { followRanges, type RangeWriter } from '../../workers/fetch/receive.ts';
import type { SparseRegion } from '../../workers/fetch/sparse.ts';
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

describe('followRanges', () => {
  /** A local process that appends one range of `source` to the file (its stdout, opened to
   *  append), as a worker's reader does through OpenSSH; `script` replaces dd to misbehave. */
  function appender(fd: number, source: string, script?: string): () => Promise<RangeWriter> {
    return async () => {
      let go: (range: SparseRegion) => void = () => {};
      const started = new Promise<SparseRegion>((r) => (go = r));
      let child: ReturnType<typeof spawn> | undefined;
      const done = started.then(
        (range) =>
          new Promise<void>((resolve, reject) => {
            const cmd = script ?? 'dd if="$1" bs=64K iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none';
            child = spawn('sh', ['-c', cmd, 'sh', source, String(range.offset), String(range.size)], { stdio: ['ignore', fd, 'inherit'] });
            child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))));
          }),
      );
      return { start: go, done, cancel: () => child?.kill() };
    };
  }

  async function sourceWith(name: string, size: number, extents: Array<{ offset: number; data: Buffer }>): Promise<string> {
    const fh = await fileWith(name, extents);
    await fh.truncate(size);
    await fh.close();
    return join(dir, name);
  }

  it('puts each range at its offset, keeps the holes, hashes it all and reports progress to the end', async () => {
    const extents = [
      { offset: 0, data: randomBytes(3 * MiB) },
      { offset: 9 * MiB, data: randomBytes(MiB + 123) },
      { offset: 20 * MiB, data: randomBytes(2 * MiB) },
    ];
    const size = 30 * MiB;
    const source = await sourceWith('ranges-src.bin', size, extents);
    const target = join(dir, 'ranges-dst.bin');
    const fh = await open(target, 'w+');
    const append = await open(target, 'a');
    try {
      const seen: number[] = [];
      const ranges = extents.map((e) => ({ offset: e.offset, size: e.data.length }));
      const r = await followRanges(fh, size, ranges, appender(append.fd, source), (p) => seen.push(p.reached));
      expect(r).toMatchObject({ size, dataBytes: 6 * MiB + 123, sparse: true });
      expect(r.sha256).toBe(reference(size, extents));
      expect(readFileSync(target).equals(readFileSync(source))).toBe(true);
      expect((await fh.stat()).blocks * 512).toBeLessThan(8 * MiB); // the holes were never written
      expect(seen.at(-1)).toBe(size);
    } finally {
      await append.close();
      await fh.close();
    }
  });

  it('takes a dense file as one range, and a file with no data as holes only', async () => {
    const data = randomBytes(5 * MiB);
    const source = await sourceWith('dense-src.bin', data.length, [{ offset: 0, data }]);
    const fh = await open(join(dir, 'dense-dst.bin'), 'w+');
    const append = await open(join(dir, 'dense-dst.bin'), 'a');
    try {
      const r = await followRanges(fh, data.length, [{ offset: 0, size: data.length }], appender(append.fd, source));
      expect(r).toMatchObject({ size: data.length, dataBytes: data.length, sparse: false });
      expect(r.sha256).toBe(createHash('sha256').update(data).digest('hex'));
    } finally {
      await append.close();
      await fh.close();
    }
    const empty = await open(join(dir, 'holes.bin'), 'w+');
    try {
      const r = await followRanges(empty, 4 * MiB, [], () => Promise.reject(new Error('no writer is needed')));
      expect(r).toMatchObject({ size: 4 * MiB, dataBytes: 0, sparse: true });
      expect(r.sha256).toBe(reference(4 * MiB, []));
      expect((await empty.stat()).size).toBe(4 * MiB);
    } finally {
      await empty.close();
    }
  });

  it('fails when a writer brings too little or too much, or fails itself, and stops the next one', async () => {
    const data = randomBytes(2 * MiB);
    const source = await sourceWith('short-src.bin', 8 * MiB, [{ offset: 0, data }, { offset: 6 * MiB, data }]);
    const ranges = [{ offset: 0, size: 2 * MiB }, { offset: 6 * MiB, size: 2 * MiB }];
    const attempt = async (name: string, script: string) => {
      const fh = await open(join(dir, name), 'w+');
      const append = await open(join(dir, name), 'a');
      try {
        return await followRanges(fh, 8 * MiB, ranges, appender(append.fd, source, script)).catch((e: unknown) => e);
      } finally {
        await append.close();
        await fh.close();
      }
    };
    expect(String(await attempt('short.bin', 'head -c 1000000 "$1"'))).toMatch(
      /1097152 bytes of the file missing \(1000000 of 2097152 bytes of the range at offset 0 arrived\)/,
    );
    expect(String(await attempt('long.bin', 'head -c 3000000 "$1"'))).toMatch(/brought 902848 bytes more than its 2097152/);
    expect(String(await attempt('failed.bin', 'exit 3'))).toMatch(/exit 3/);
    let opened = 0;
    const cancelled: number[] = [];
    const fh = await open(join(dir, 'cancel.bin'), 'w+');
    try {
      const err = await followRanges(fh, 8 * MiB, ranges, async () => {
        const n = ++opened;
        return { start: () => {}, done: n === 1 ? Promise.reject(new Error('reader 1 failed')) : new Promise(() => {}), cancel: () => cancelled.push(n) };
      }).catch((e: unknown) => e);
      expect(String(err)).toMatch(/reader 1 failed/);
      expect(opened).toBe(2); // the next reader was opened ahead...
      expect(cancelled).toContain(2); // ...and stopped
    } finally {
      await fh.close();
    }
  });

  it('refuses ranges out of order, empty or past the end', async () => {
    const fh = await open(join(dir, 'bad-ranges.bin'), 'w+');
    const never = () => Promise.reject(new Error('not reached'));
    try {
      await expect(followRanges(fh, 10, [{ offset: 5, size: 2 }, { offset: 4, size: 1 }], never)).rejects.toThrow(/out of order/);
      await expect(followRanges(fh, 10, [{ offset: 5, size: 0 }], never)).rejects.toThrow(/empty/);
      await expect(followRanges(fh, 10, [{ offset: 8, size: 3 }], never)).rejects.toThrow(/past the file size 10/);
    } finally {
      await fh.close();
    }
  });
});
