// Direct kernel boot, a per-arch setting (smoke: { boot: direct }) for disks whose bootloader the
// firmware cannot run under QEMU (the lab's s390x disks: zipl is an s390x program, so the lab's
// stand-in writes none). The Boot Loader Specification entry on the disk's root filesystem
// (/boot/loader/entries/*.conf) names the kernel, initrd and options; debugfs (e2fsprogs) copies
// them out read-only, on the worker. The disk is not changed.

import { posix } from 'node:path';
import { FarmError } from '../../src/core/errors.ts';
import type { WorkerTransport } from '../transport.ts';
import { parseBlsEntry } from './plan.ts';

const LINUX_FS = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
const ENTRIES = '/boot/loader/entries';

export async function directKernel(
  t: WorkerTransport,
  { disk, format, dir, signal }: { disk: string; format: string; dir: string; signal: AbortSignal },
): Promise<{ kernel: string; initrd?: string; append: string; entry: string }> {
  let raw = disk;
  if (format !== 'raw') {
    raw = posix.join(dir, 'disk.raw');
    await t.exec(['qemu-img', 'convert', '-f', format, '-O', 'raw', disk, raw], { signal });
  }
  const table = (JSON.parse((await t.exec(['sfdisk', '--json', raw], { signal })).stdout) as { partitiontable: { sectorsize?: number; partitions: Array<{ start: number; type: string }> } }).partitiontable;
  const root = table.partitions.find((p) => p.type.toUpperCase() === LINUX_FS) ?? table.partitions.at(-1);
  if (!root) throw new FarmError('BUILD', `${disk}: no partitions, nothing to boot`);
  const dev = `${raw}?offset=${root.start * (table.sectorsize ?? 512)}`;
  const debugfs = async (cmd: string) => {
    const r = await t.exec(['debugfs', '-R', cmd, dev], { signal, check: false });
    if (r.code !== 0 || /Bad magic number|Couldn't find valid filesystem/.test(r.stderr)) {
      throw new FarmError('BUILD', `${disk}: direct kernel boot reads the kernel from an ext4 root filesystem (builder.rootfs: ext4), debugfs says: ${r.stderr.trim().split('\n').at(-1)}`);
    }
    return r;
  };
  const names = (await debugfs(`ls -p ${ENTRIES}`)).stdout
    .split('\n')
    .map((l) => l.split('/')[5])
    .filter((n): n is string => !!n && n.endsWith('.conf'))
    .sort();
  if (names.length === 0) throw new FarmError('BUILD', `${disk}: no boot entry in ${ENTRIES} (the disk has no kernel to boot)`);
  const entry = parseBlsEntry((await debugfs(`cat ${ENTRIES}/${names[0]}`)).stdout);
  if (!entry.linux) throw new FarmError('BUILD', `${disk}: boot entry ${ENTRIES}/${names[0]} names no kernel (linux line)`);
  const dump = async (path: string, name: string) => {
    const out = posix.join(dir, name);
    await debugfs(`dump ${path} ${out}`);
    const size = await t.exec(['stat', '-c', '%s', '--', out], { signal, check: false });
    if (size.code !== 0 || size.stdout.trim() === '0') throw new FarmError('BUILD', `${disk}: cannot read ${path} from the root filesystem (the disk has no kernel to boot)`);
    return out;
  };
  const kernel = await dump(entry.linux, 'kernel');
  const initrd = entry.initrd ? await dump(entry.initrd, 'initrd') : undefined;
  return { kernel, ...(initrd ? { initrd } : {}), append: entry.options, entry: `${ENTRIES}/${names[0]}` };
}
