// Where a worker file's data is: GNU tar finds the holes (SEEK_DATA/SEEK_HOLE) and writes the
// map at the start of its PAX sparse 1.0 member; only that head of the archive is read here.

import { posix } from 'node:path';
import { FarmError } from '../../src/core/errors.ts';
import type { WorkerTransport } from '../transport.ts';
import { SparseMapParser, sparseInfo, type SparseRegion } from './sparse.ts';

export interface FileLayout {
  /** Apparent size. */
  size: number;
  /** Data regions in file order (size-0 entries dropped); one region for a dense file. */
  regions: SparseRegion[];
  sparse: boolean;
  /** Bytes of tar output read to learn this. */
  headBytes: number;
}

/** GNU tar argv that streams one file, holes skipped (SEEK_HOLE), as a PAX sparse 1.0 member. */
export function tarArgv(remotePath: string): string[] {
  return [
    'tar',
    '--format=posix',
    '--sparse',
    '--sparse-version=1.0',
    '--no-recursion',
    '-C',
    posix.dirname(remotePath),
    '-cf',
    '-',
    '--',
    posix.basename(remotePath),
  ];
}

/** The first `limit` bytes of the tar stream: headers and sparse map (tar stops on SIGPIPE). */
export function layoutArgv(remotePath: string, limit: number): string[] {
  const [, ...tarArgs] = tarArgv(remotePath);
  return ['sh', '-c', 'limit=$1; shift; tar "$@" | head -c "$limit"', 'sh', String(limit), ...tarArgs];
}

/** A map that did not fit in the bytes read; ask again with more. */
export class LayoutTruncated extends Error {}

const BLOCK = 512;
const TYPE_NAMES: Record<string, string> = { '1': 'hard link', '2': 'symlink', '3': 'character device', '4': 'block device', '5': 'directory', '6': 'fifo' };

interface TarHead {
  typeflag: string;
  name: string;
  size: number;
  pax: Record<string, string>;
  /** Offset of the member's data in the head. */
  dataOffset: number;
}

function octal(block: Buffer, offset: number, length: number): number {
  const field = block.subarray(offset, offset + length);
  if (field[0]! & 0x80) {
    // GNU base-256 for values that do not fit in octal digits
    let n = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return n;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  return text === '' ? 0 : parseInt(text, 8);
}

function text(block: Buffer, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? field.length : nul).toString('utf8');
}

/** PAX records: "LEN key=value\n", LEN counting the whole record in bytes. */
function paxRecords(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < data.length && data[at] !== 0) {
    const space = data.indexOf(0x20, at);
    const len = space > at ? Number(data.subarray(at, space).toString('latin1')) : NaN;
    if (!Number.isSafeInteger(len) || len <= 0 || at + len > data.length) throw new FarmError('FETCH', 'malformed PAX header in the tar stream');
    const record = data.subarray(space + 1, at + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    at += len;
  }
  return out;
}

/**
 * Reads the headers of the first member from the head of a tar stream. tar-stream (used for
 * whole streams) treats a stream that stops mid-member as an error and drops what it buffered,
 * so this head, cut off on purpose, is read here: ustar blocks with checksums, PAX headers.
 */
function readTarHead(head: Buffer): TarHead | undefined {
  let global: Record<string, string> = {};
  let pax: Record<string, string> = {};
  for (let at = 0; ; ) {
    if (at + BLOCK > head.length) throw new LayoutTruncated();
    const block = head.subarray(at, at + BLOCK);
    if (block.every((b) => b === 0)) return undefined; // end of archive: no member
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
    if (sum !== octal(block, 148, 8)) throw new FarmError('FETCH', 'corrupt tar header (checksum mismatch) in the stream from the worker');
    const typeflag = block[156] === 0 ? '0' : String.fromCharCode(block[156]!);
    const size = octal(block, 124, 12);
    at += BLOCK;
    if (typeflag === 'x' || typeflag === 'g') {
      if (at + size > head.length) throw new LayoutTruncated();
      const records = paxRecords(head.subarray(at, at + size));
      if (typeflag === 'g') global = { ...global, ...records };
      else pax = { ...pax, ...records };
      at += Math.ceil(size / BLOCK) * BLOCK;
      continue;
    }
    const merged = { ...global, ...pax };
    const prefix = block.subarray(257, 263).toString('latin1').startsWith('ustar') ? text(block, 345, 155) : '';
    const name = merged.path ?? (prefix ? `${prefix}/${text(block, 0, 100)}` : text(block, 0, 100));
    return { typeflag, name, size: merged.size !== undefined ? Number(merged.size) : size, pax: merged, dataOffset: at };
  }
}

/** Parses the head of a one-file tar stream into the file's layout; undefined when the stream
 *  holds no member (tar failed). Throws LayoutTruncated when the head is too short. */
export async function parseLayout(head: Buffer, expectedName: string): Promise<FileLayout | undefined> {
  const h = readTarHead(head);
  if (!h) return undefined;
  if (h.typeflag !== '0' && h.typeflag !== '7') {
    throw new FarmError('FETCH', `${expectedName} is not a regular file (tar member type ${TYPE_NAMES[h.typeflag] ?? h.typeflag})`);
  }
  const sparse = sparseInfo(h.pax);
  const name = sparse?.name ?? h.name;
  if (name !== expectedName) throw new FarmError('FETCH', `tar sent member ${JSON.stringify(name)} instead of ${expectedName}`);
  if (!sparse) return { size: h.size, regions: h.size > 0 ? [{ offset: 0, size: h.size }] : [], sparse: false, headBytes: head.length };
  const map = new SparseMapParser(sparse.realSize);
  if (map.push(head.subarray(h.dataOffset)) === undefined) throw new LayoutTruncated();
  const dataBytes = map.regions.reduce((n, r) => n + r.size, 0);
  if (map.mapBytes + dataBytes !== h.size) {
    throw new FarmError('FETCH', `malformed sparse tar member: the map of ${expectedName} describes ${dataBytes} data bytes, the member holds ${h.size - map.mapBytes}`);
  }
  return { size: sparse.realSize, regions: map.regions.filter((r) => r.size > 0), sparse: true, headBytes: head.length };
}

// Enough for the headers and a map of ~1,000 regions; larger maps are read again with more
// (up to ~250,000 regions), and beyond that the fetch streams tar's whole output instead.
const FIRST_LIMIT = 16 * 1024;
const MAX_LIMIT = 4 * 1024 * 1024;

/** Asks the worker for a file's layout. Undefined when the map is too large to read this way. */
export async function remoteLayout(
  transport: WorkerTransport,
  remotePath: string,
  options: { signal?: AbortSignal } = {},
): Promise<FileLayout | undefined> {
  for (let limit = FIRST_LIMIT; limit <= MAX_LIMIT; limit *= 16) {
    const proc = await transport.spawn(layoutArgv(remotePath, limit), options);
    const chunks: Buffer[] = [];
    for await (const chunk of proc.stdout) chunks.push(chunk as Buffer);
    const exit = await proc.done;
    const head = Buffer.concat(chunks);
    try {
      const layout = await parseLayout(head, posix.basename(remotePath));
      if (layout) return layout;
      throw new FarmError('FETCH', `tar on ${transport.worker.name} failed for ${remotePath}: ${exit.stderr.trim().slice(-1000) || `no file in its output (exit code ${exit.code})`}`);
    } catch (err) {
      if (!(err instanceof LayoutTruncated)) throw err;
    }
  }
  return undefined;
}
