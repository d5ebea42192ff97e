// The prototype file mkfs.xfs -p reads to populate a new XFS filesystem from a directory tree
// (xfsprogs 6.1 has no --rootdir as mke2fs -d and mkfs.btrfs --rootdir do). The format is
// whitespace-separated tokens, so names and link targets with spaces, colons (comments) or a lone
// `$` (end of directory) cannot be expressed: such a tree is refused with the path named. Modes
// keep setuid/setgid and the permission bits; the sticky bit, times and xattrs are not kept.
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

const UNSAFE = /[\s:]/;

function token(value, what, path) {
  if (value === '' || value === '$' || UNSAFE.test(value)) {
    throw new Error(`the stand-in cannot put ${path} into an xfs filesystem: its ${what} ${JSON.stringify(value)} has a space, a colon or is "$" (use --rootfs ext4 or btrfs)`);
  }
  return value;
}

function mode(type, st) {
  const perm = (st.mode & 0o777).toString(8).padStart(3, '0');
  return `${type}${st.mode & 0o4000 ? 'u' : '-'}${st.mode & 0o2000 ? 'g' : '-'}${perm}`;
}

// Linux's dev_t encoding (glibc major()/minor()).
const major = (rdev) => Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
const minor = (rdev) => Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));

/** The protofile for the tree at rootDir; regular files are copied from their paths under it. */
export function xfsProto(rootDir) {
  token(rootDir, 'path', rootDir);
  const lines = ['/farm-lab-standin', '0 0'];
  const root = lstatSync(rootDir);
  lines.push(`${mode('d', root)} ${root.uid} ${root.gid}`);
  const walk = (dir, depth) => {
    const pad = '  '.repeat(depth);
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const st = lstatSync(path);
      const head = `${pad}${token(name, 'name', path)}`;
      if (st.isDirectory()) {
        lines.push(`${head} ${mode('d', st)} ${st.uid} ${st.gid}`);
        walk(path, depth + 1);
        lines.push(`${pad}$`);
      } else if (st.isFile()) {
        lines.push(`${head} ${mode('-', st)} ${st.uid} ${st.gid} ${path}`);
      } else if (st.isSymbolicLink()) {
        lines.push(`${head} ${mode('l', st)} ${st.uid} ${st.gid} ${token(readlinkSync(path), 'link target', path)}`);
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        lines.push(`${head} ${mode(st.isCharacterDevice() ? 'c' : 'b', st)} ${st.uid} ${st.gid} ${major(st.rdev)} ${minor(st.rdev)}`);
      } else if (st.isFIFO()) {
        lines.push(`${head} ${mode('p', st)} ${st.uid} ${st.gid}`);
      }
      // Sockets are not part of an image.
    }
  };
  walk(rootDir, 1);
  lines.push('$', '');
  return lines.join('\n');
}
