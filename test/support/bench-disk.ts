// A disk image shaped like the raw disk bib writes for a bootc image, for benchmarks: a GPT (both
// copies, so data at both ends), an EFI system partition (FAT, two boot loader files), a /boot
// ext4 with a kernel and an initramfs, and a root ext4 filled with a tree of files of realistic
// sizes (many small text files, libraries, a few large binaries). The filesystems are made by
// mkfs itself (metadata, journals and inode tables where mkfs puts them), so data and holes fall
// where a real image has them, not in an even pattern. Binary content is random (compressed
// payloads look random), text is words. File sizes come from a fixed seed: every run gets the
// same layout; the figures reported are measured from the file, not assumed.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { allocatedBytes } from './disk.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SECTOR = 512;
const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const LINUX_FS = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

export interface BenchDisk {
  path: string;
  /** Apparent size (what non-sparse uploads send). */
  apparent: number;
  /** Allocated bytes (what a sparse upload must send). */
  data: number;
  /** Runs of data between holes. */
  regions: number;
}

export interface BenchDiskOptions {
  /** Apparent size in MiB (default 768). */
  sizeMiB?: number;
  /** MiB of file data in the root filesystem (default 160). */
  rootDataMiB?: number;
}

/** Small deterministic PRNG (mulberry32): the same layout on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = 'the of and to in is for on with as by at from this that be are or an it not which config path value system service unit install enable default'.split(' ');

function text(bytes: number, rnd: () => number): Buffer {
  const parts: string[] = [];
  let n = 0;
  while (n < bytes) {
    const w = WORDS[Math.floor(rnd() * WORDS.length)]!;
    parts.push(w);
    n += w.length + 1;
  }
  return Buffer.from(parts.join(rnd() < 0.1 ? '\n' : ' ').slice(0, bytes));
}

/** A file tree of about `budget` bytes: 15% small text files, 70% libraries, 15% big binaries. */
async function fillTree(root: string, budget: number, rnd: () => number): Promise<void> {
  const plan: { kind: 'text' | 'bin'; size: number }[] = [];
  const add = (kind: 'text' | 'bin', share: number, min: number, max: number) => {
    for (let left = budget * share; left > 0; ) {
      // Log-uniform sizes: most files near the small end, as in /usr.
      const size = Math.round(min * (max / min) ** rnd());
      plan.push({ kind, size });
      left -= size;
    }
  };
  add('text', 0.15, 512, 32 * 1024);
  add('bin', 0.7, 16 * 1024, 2 * MiB);
  add('bin', 0.15, 4 * MiB, 12 * MiB);
  for (let i = 0; i < plan.length; i++) {
    const { kind, size } = plan[i]!;
    const dir = join(root, `d${i % 97}`, `s${i % 13}`);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `${kind}${i}`), kind === 'text' ? text(size, rnd) : randomBytes(size));
  }
}

/** Makes the disk at `dir/disk.raw` (build trees are removed again). Needs sfdisk, mkfs.fat, mtools, mkfs.ext4. */
export async function makeBootcDisk(dir: string, opts: BenchDiskOptions = {}): Promise<BenchDisk> {
  const size = (opts.sizeMiB ?? 768) * MiB;
  const rnd = prng(0x5eed);
  const path = join(dir, 'disk.raw');
  const espStart = 1 * MiB;
  const espSize = 64 * MiB;
  const bootStart = espStart + espSize;
  const bootSize = 128 * MiB;
  const rootStart = bootStart + bootSize;
  // The backup GPT takes the last 33 sectors; 1 MiB left free at the end, as partitioners do.
  const rootSize = size - rootStart - 1 * MiB;
  const fh = await open(path, 'w');
  await fh.truncate(size);
  await fh.close();
  const sectors = (bytes: number) => bytes / SECTOR;
  const table = [
    'label: gpt',
    `start=${sectors(espStart)}, size=${sectors(espSize)}, type=${ESP_TYPE}, name="EFI-SYSTEM"`,
    `start=${sectors(bootStart)}, size=${sectors(bootSize)}, type=${LINUX_FS}, name="boot"`,
    `start=${sectors(rootStart)}, size=${sectors(rootSize)}, type=${LINUX_FS}, name="root"`,
    '',
  ].join('\n');
  await new Promise<void>((resolve, reject) => {
    const child = execFile('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', path], (err) => (err ? reject(err) : resolve()));
    child.stdin!.end(table);
  });

  // ESP: FAT with the shim and GRUB (random stand-ins of their sizes).
  const espFiles = join(dir, 'esp');
  await mkdir(espFiles, { recursive: true });
  await writeFile(join(espFiles, 'shimx64.efi'), randomBytes(1 * MiB));
  await writeFile(join(espFiles, 'grubx64.efi'), randomBytes(3 * MiB));
  await run('mkfs.fat', ['-F', '16', '--offset', String(sectors(espStart)), '-n', 'EFI-SYSTEM', path, String(espSize / 1024)]);
  const esp = `${path}@@${espStart}`;
  await run('mmd', ['-i', esp, '::EFI', '::EFI/fedora']);
  await run('mcopy', ['-i', esp, join(espFiles, 'shimx64.efi'), join(espFiles, 'grubx64.efi'), '::EFI/fedora/']);

  // /boot: kernel, initramfs and a loader entry.
  const bootTree = join(dir, 'boot');
  await mkdir(join(bootTree, 'loader', 'entries'), { recursive: true });
  await writeFile(join(bootTree, 'vmlinuz-6.11.0-bench'), randomBytes(14 * MiB));
  await writeFile(join(bootTree, 'initramfs-6.11.0-bench.img'), randomBytes(36 * MiB));
  await writeFile(join(bootTree, 'loader', 'entries', 'ostree-1.conf'), text(400, rnd));
  const mkext4 = (start: number, bytes: number, tree: string, label: string) =>
    run('mkfs.ext4', ['-F', '-q', '-L', label, '-E', `offset=${start},nodiscard`, '-d', tree, path, `${bytes / 1024}k`]);
  await mkext4(bootStart, bootSize, bootTree, 'boot');

  const rootTree = join(dir, 'root');
  await fillTree(rootTree, (opts.rootDataMiB ?? 160) * MiB, rnd);
  await mkext4(rootStart, rootSize, rootTree, 'root');
  await Promise.all([espFiles, bootTree, rootTree].map((d) => rm(d, { recursive: true, force: true })));

  const apparent = (await stat(path)).size;
  if (apparent !== size) throw new Error(`${path}: mkfs changed its size to ${apparent}, expected ${size}`);
  return { path, apparent, data: await allocatedBytes(path), regions: await dataRegions(path) };
}

/** Data regions: runs of allocated blocks between holes (filefrag's extents, joined where they touch). */
async function dataRegions(path: string): Promise<number> {
  const { stdout } = await run('filefrag', ['-v', '-b4096', path], { maxBuffer: 64 << 20 });
  let regions = 0;
  let end = -1;
  for (const m of stdout.matchAll(/^\s*\d+:\s+(\d+)\.\.\s*(\d+):/gm)) {
    if (Number(m[1]) !== end + 1) regions++;
    end = Number(m[2]);
  }
  return regions;
}

/** "768 MiB raw, 253 MiB data (33%), 67% holes, 40 data regions" */
export function describeDisk(d: BenchDisk): string {
  const pct = (n: number) => `${Math.round(n * 100)}%`;
  return `${(d.apparent / MiB).toFixed(0)} MiB raw, ${(d.data / MiB).toFixed(0)} MiB data (${pct(d.data / d.apparent)}), ${pct(1 - d.data / d.apparent)} holes, ${d.regions} data regions`;
}
