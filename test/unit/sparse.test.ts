import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { receiveTarFile } from '../../workers/fetch/receive.ts';
import { SparseMapParser, sparseInfo } from '../../workers/fetch/sparse.ts';
import { tarArgv } from '../../workers/fetch/fetch.ts';
import { identical } from '../support/assert.ts';

const MiB = 1024 * 1024;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'farm-sparse-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A sparse file made the way an admin would: truncate, then dd random data at offsets. */
function makeSparse(name: string, size: number, regions: Array<{ offset: number; size: number }>): string {
  const file = join(dir, name);
  execFileSync('truncate', ['-s', String(size), file]);
  for (const r of regions) {
    execFileSync('dd', ['if=/dev/urandom', `of=${file}`, 'bs=4096', `seek=${r.offset / 4096}`, `count=${r.size / 4096}`, 'conv=notrunc', 'status=none']);
  }
  return file;
}

/** The archive GNU tar makes of a file, exactly as the worker runs it. */
function gnuTar(file: string): Buffer {
  const argv = tarArgv(file);
  return execFileSync(argv[0]!, argv.slice(1), { maxBuffer: 512 * MiB });
}

/** Re-chunks a buffer into pieces of varying small sizes, to cross every boundary. */
function chunked(buf: Buffer, sizes: number[]): Readable {
  const parts: Buffer[] = [];
  for (let off = 0, i = 0; off < buf.length; i++) {
    const n = sizes[i % sizes.length]!;
    parts.push(buf.subarray(off, off + n));
    off += n;
  }
  return Readable.from(parts);
}

async function receiveInto(stream: Readable, out: string, name: string) {
  const fh = await open(out, 'w+');
  try {
    return await receiveTarFile(stream, fh, name);
  } finally {
    await fh.close();
  }
}

function sha256sum(file: string): string {
  return execFileSync('sha256sum', [file]).toString().split(' ')[0]!;
}

function allocated(file: string): number {
  return statSync(file).blocks * 512;
}

describe('SparseMapParser', () => {
  const mapText = '3\n0\n4096\n8192\n512\n65536\n0\n';
  const padded = Buffer.concat([Buffer.from(mapText), Buffer.alloc(512 - mapText.length), Buffer.from('DATA')]);

  it('parses the map fed one byte at a time and returns what follows the padding', () => {
    const p = new SparseMapParser(65536);
    let rest: Buffer | undefined;
    for (let i = 0; i < padded.length && rest === undefined; i++) rest = p.push(padded.subarray(i, i + 1));
    expect(p.regions).toEqual([
      { offset: 0, size: 4096 },
      { offset: 8192, size: 512 },
      { offset: 65536, size: 0 },
    ]);
    expect(p.mapBytes).toBe(512);
    // One byte at a time: the data begins with the byte after the padding.
    expect(rest?.toString()).toBe('');
    expect(p.done).toBe(true);
  });

  it('parses the map in one chunk', () => {
    const p = new SparseMapParser(65536);
    expect(p.push(padded)?.toString()).toBe('DATA');
  });

  it('rejects malformed maps', () => {
    const parse = (text: string, size = 1 << 20) => () => new SparseMapParser(size).push(Buffer.from(text));
    expect(parse('2\n0\n4096\n1024\n10\n')).toThrow(/overlaps/);
    expect(parse('1\n0\n8192\n', 4096)).toThrow(/past the file size/);
    expect(parse('1\n0x10\n')).toThrow(/unexpected byte/);
    expect(parse('99999999999\n')).toThrow(/regions in the sparse map/);
    expect(parse('1\n12345678901234567\n')).toThrow(/too long/);
    expect(parse('1\n\n')).toThrow(/not a decimal/);
  });

  it('reads the PAX keys and refuses old sparse formats', () => {
    expect(sparseInfo(undefined)).toBeUndefined();
    expect(sparseInfo({ path: 'x' })).toBeUndefined();
    expect(sparseInfo({ 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.realsize': '1024', 'GNU.sparse.name': 'disk.raw' })).toEqual({
      realSize: 1024,
      name: 'disk.raw',
    });
    expect(() => sparseInfo({ 'GNU.sparse.map': '0,1', 'GNU.sparse.numblocks': '1' })).toThrow(FarmError);
    expect(() => sparseInfo({ 'GNU.sparse.major': '0', 'GNU.sparse.minor': '1', 'GNU.sparse.realsize': '1' })).toThrow(/not supported/);
  });
});

describe('receiveTarFile with archives from GNU tar', () => {
  const cases: Array<{ name: string; size: number; regions: Array<{ offset: number; size: number }> }> = [
    {
      name: 'disk.raw',
      size: 64 * MiB,
      regions: [
        { offset: 0, size: 1 * MiB },
        { offset: 10 * MiB + 4096 * 3, size: 40960 },
        { offset: 33 * MiB, size: 2 * MiB },
        { offset: 60 * MiB, size: 1 * MiB },
      ],
    },
    { name: 'leading-hole.raw', size: 16 * MiB, regions: [{ offset: 8 * MiB, size: 4096 }, { offset: 16 * MiB - 8192, size: 8192 }] },
    { name: 'all-hole.raw', size: 32 * MiB, regions: [] },
  ];

  for (const c of cases) {
    it(`restores ${c.name} byte-identical, sparse and with the right sha256`, async () => {
      const src = makeSparse(c.name, c.size, c.regions);
      const archive = gnuTar(src);
      const dataBytes = c.regions.reduce((n, r) => n + r.size, 0);
      // Holes are not in the archive.
      expect(archive.length).toBeLessThan(dataBytes + 64 * 1024);
      const out = join(dir, `${c.name}.out`);
      const r = await receiveInto(chunked(archive, [65536, 7, 1000, 511, 513, 32768]), out, c.name);
      expect(r.sparse).toBe(true);
      expect(r.size).toBe(c.size);
      expect(statSync(out).size).toBe(c.size);
      expect(identical(src, out)).toBe(true);
      expect(r.sha256).toBe(sha256sum(src));
      expect(r.dataBytes).toBe(dataBytes);
      // Holes stayed holes: only the data is allocated (plus a little filesystem slack).
      expect(allocated(out)).toBeLessThanOrEqual(dataBytes + 64 * 1024);
      expect(allocated(out)).toBeLessThan(c.size / 8);
    });
  }

  it('restores a file with hundreds of regions (a sparse map over several blocks)', async () => {
    const name = 'fragmented.raw';
    const src = join(dir, name);
    const size = 48 * MiB;
    execFileSync('truncate', ['-s', String(size), src]);
    const fd = openSync(src, 'r+');
    const block = Buffer.alloc(4096);
    for (let i = 0; i < 400; i++) {
      block.fill(i % 251);
      writeSync(fd, block, 0, block.length, i * 3 * 40960 + (i % 3) * 4096);
    }
    closeSync(fd);
    const archive = gnuTar(src);
    const out = join(dir, `${name}.out`);
    const r = await receiveInto(chunked(archive, [100, 4096, 3]), out, name);
    expect(identical(src, out)).toBe(true);
    expect(r.sha256).toBe(sha256sum(src));
    expect(r.dataBytes).toBe(400 * 4096);
    expect(allocated(out)).toBeLessThanOrEqual(400 * 4096 + 64 * 1024);
  });

  it('restores plain (non-sparse) members, including an empty file', async () => {
    for (const [name, size] of [['dense.bin', 3 * MiB + 17], ['empty.bin', 0]] as const) {
      const src = join(dir, name);
      execFileSync('sh', ['-c', 'head -c "$1" /dev/urandom > "$2"', 'sh', String(size), src]);
      const out = join(dir, `${name}.out`);
      const r = await receiveInto(Readable.from([gnuTar(src)]), out, name);
      expect(r.sparse).toBe(false);
      expect(r.size).toBe(size);
      expect(identical(src, out)).toBe(true);
      expect(r.sha256).toBe(sha256sum(src));
    }
  });

  it('streams straight from a tar process with backpressure', async () => {
    const src = makeSparse('piped.raw', 24 * MiB, [{ offset: 4 * MiB, size: 4 * MiB }, { offset: 20 * MiB, size: 1 * MiB }]);
    const argv = tarArgv(src);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
    const out = join(dir, 'piped.out');
    const r = await receiveInto(child.stdout, out, 'piped.raw');
    expect(identical(src, out)).toBe(true);
    expect(r.sha256).toBe(sha256sum(src));
  });

  it('rejects a member whose map disagrees with its size, a wrong name and a truncated stream', async () => {
    const src = makeSparse('tamper.raw', 8 * MiB, [{ offset: 1 * MiB, size: 8192 }]);
    const archive = gnuTar(src);
    // The map sits right after the pax header and ustar header blocks; shrink one region.
    const text = archive.toString('latin1');
    const mapAt = text.indexOf('2\n1048576\n8192\n');
    expect(mapAt).toBeGreaterThan(0);
    const tampered = Buffer.from(archive);
    tampered.write('2\n1048576\n8191\n', mapAt, 'latin1');
    await expect(receiveInto(Readable.from([tampered]), join(dir, 't1'), 'tamper.raw')).rejects.toThrow(/describes 8191 data bytes/);
    await expect(receiveInto(Readable.from([archive]), join(dir, 't2'), 'other.raw')).rejects.toThrow(/instead of other.raw/);
    await expect(receiveInto(Readable.from([archive.subarray(0, 3000)]), join(dir, 't3'), 'tamper.raw')).rejects.toThrow();
    await expect(receiveInto(Readable.from([Buffer.alloc(10240)]), join(dir, 't4'), 'tamper.raw')).rejects.toThrow(/held no file/);
  });
});
