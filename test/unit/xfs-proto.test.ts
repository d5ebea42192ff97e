// The stand-in bib's protofile for mkfs.xfs: checked by mkfs.xfs itself and read back with xfs_db.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs of the lab's stand-in bib, without type declarations
import { xfsProto } from '../../scripts/lab.d/bib-standin/xfs-proto.mjs';

const proto = xfsProto as (root: string) => string;
let dir: string;
let root: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'farm-xfsproto-'));
  root = join(dir, 'root');
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(join(root, 'usr/bin'), { recursive: true });
  writeFileSync(join(root, 'etc/marker'), 'farm\n');
  writeFileSync(join(root, 'usr/bin/tool'), '#!/bin/sh\n');
  chmodSync(join(root, 'usr/bin/tool'), 0o4755);
  symlinkSync('../../etc/marker', join(root, 'usr/bin/link'));
  execFileSync('mkfifo', [join(root, 'etc/fifo')]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('xfsProto', () => {
  it('describes every entry with its type, mode, owner and source', () => {
    const text = proto(root);
    const lines = text.split('\n');
    expect(lines.slice(0, 2)).toEqual(['/farm-lab-standin', '0 0']);
    expect(text).toContain(`    marker ---644 0 0 ${join(root, 'etc/marker')}\n`);
    expect(text).toContain('    fifo p--644 0 0\n');
    expect(text).toContain(`      tool -u-755 0 0 ${join(root, 'usr/bin/tool')}\n`);
    expect(text).toContain('      link l--777 0 0 ../../etc/marker\n');
    expect(lines.filter((l) => l.trim() === '$')).toHaveLength(4); // etc, usr/bin, usr, root
  });

  it('makes a filesystem mkfs.xfs accepts, holding the files', () => {
    const image = join(dir, 'fs.img');
    execFileSync('truncate', ['-s', '320M', image]);
    writeFileSync(join(dir, 'proto'), proto(root));
    execFileSync('mkfs.xfs', ['-q', '-f', '-p', join(dir, 'proto'), image]);
    const ls = execFileSync('xfs_db', ['-r', '-c', 'ls /usr/bin', image]).toString();
    expect(ls).toMatch(/regular .* tool/);
    expect(ls).toMatch(/symlink .* link/);
    const size = execFileSync('xfs_db', ['-r', '-c', 'path /etc/marker', '-c', 'p core.size', image]).toString();
    expect(size).toContain('core.size = 5');
  });

  it('refuses names and link targets it cannot express, naming the path', () => {
    const bad = join(dir, 'bad');
    mkdirSync(join(bad, 'etc'), { recursive: true });
    writeFileSync(join(bad, 'etc', 'has space'), '');
    expect(() => proto(bad)).toThrow(/cannot put .*etc\/has space into an xfs filesystem: its name "has space" has a space/);
    const colon = join(dir, 'colon');
    mkdirSync(colon);
    symlinkSync('a:b', join(colon, 'l'));
    expect(() => proto(colon)).toThrow(/link target "a:b"/);
  });
});
