// What a build sends to a worker, checked on the worker: the Containerfile lists the context as
// podman received it (a bind mount of the build context sees the unpacked tar itself, before any
// ignore rule of podman's own), and the list is read back from the fetched disk image. Then the
// build key: changing only what is never sent leaves it unchanged; changing a sent file moves it.

import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { farm } from '../support/cli.ts';
import { ensureLab, labInventoryVariant } from '../support/lab.ts';
import { readFromDisk } from '../support/disk.ts';
import type { Manifest } from '../../src/records/manifest.ts';

beforeAll(async () => {
  await ensureLab();
});

const MiB = 1024 * 1024;

describe('the build context on the worker', () => {
  it('never carries ignored files, .git or the lab dir; the key follows only what is sent', async () => {
    const base = await labInventoryVariant();
    const context = join(base.dir, 'src');
    // Outside the context: inventory check refuses a builds dir inside it (the walk's own exclusion
    // of the builds dir is covered by the unit tests).
    const builds = join(base.dir, 'builds-out');
    await mkdir(join(context, '.git', 'objects'), { recursive: true });
    await mkdir(join(context, 'secret'), { recursive: true });
    await mkdir(join(context, '.lab', 'ssh'), { recursive: true });
    await writeFile(join(context, 'motd'), 'welcome\n');
    await writeFile(join(context, '.containerignore'), 'big.bin\nsecret/\n');
    await writeFile(join(context, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    await writeFile(join(context, '.git', 'objects', 'pack'), 'x'.repeat(4096));
    await writeFile(join(context, 'secret', 'token'), 'hunter2\n');
    await writeFile(join(context, '.lab', 'ssh', 'id_ed25519'), '-----BEGIN OPENSSH PRIVATE KEY-----\n');
    execFileSync('truncate', ['-s', String(100 * MiB), join(context, 'big.bin')]);
    await writeFile(
      join(context, 'Containerfile'),
      [
        'FROM localhost/farm-lab/base:latest',
        // The bind mount is the context directory podman unpacked from the farm's tar.
        'RUN --mount=type=bind,target=/arrived mkdir -p /usr/share/farm && find /arrived | sort > /usr/share/farm/arrived',
        'COPY motd /etc/motd',
        '',
      ].join('\n'),
    );
    const variant = await labInventoryVariant((doc) => {
      doc.source.containerfile = join(context, 'Containerfile');
      doc.source.context = context;
      doc.settings.builds_dir = builds;
      doc.arches = { x86_64: { types: ['qcow2'] } };
    });
    const args = ['build', '--if-changed', '--arch', 'x86_64', '-i', variant.file];

    const first = await farm([...args, '--json', '--quiet']);
    expect(first.code, first.stderr).toBe(0);
    const manifest = JSON.parse(first.stdout) as Manifest;
    const disk = join(builds, manifest.last_run_uuid, manifest.builds[0]!.files[0]!.name);
    const arrived = (await readFromDisk(disk, 'qcow2', '/usr/share/farm/arrived')).trim().split('\n');
    expect(arrived).toEqual(['/arrived', '/arrived/.containerignore', '/arrived/Containerfile', '/arrived/motd']);

    // The log says what was sent, and what was sent is what the key digested.
    const key = JSON.parse(await readFile(join(builds, manifest.last_run_uuid, 'key.json'), 'utf8')) as { parts: Record<string, string> };
    const sent = /context sent to lab-x86_64: 3 files, ([\d.]+ \w+) \((sha256:[0-9a-f]{12})\)/.exec(first.stderr);
    expect(sent, first.stderr).not.toBeNull();
    expect(key.parts['source.context']!.startsWith(sent![2]!)).toBe(true);
    expect(first.stderr).toMatch(/context \S+: 3 files, [\d.]+ \w+ \(\.containerignore honoured\)/);
    expect(await readFile(join(builds, manifest.last_run_uuid, 'x86_64', 'build.log'), 'utf8')).toContain(`context sent to lab-x86_64: 3 files, ${sent![1]}`);

    // Only what is never sent changes: up to date, no new build.
    execFileSync('truncate', ['-s', String(50 * MiB), join(context, 'big.bin')]);
    await writeFile(join(context, 'secret', 'token'), 'changed\n');
    await writeFile(join(context, '.git', 'HEAD'), 'ref: refs/heads/other\n');
    await writeFile(join(context, '.lab', 'ssh', 'id_ed25519'), 'another key\n');
    const before = await readdir(builds);
    const second = await farm([...args, '--quiet']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain(`up to date: build ${manifest.last_run_uuid}`);
    expect(await readdir(builds)).toEqual(before);

    // A sent file changes: the key moves and it builds.
    await writeFile(join(context, 'motd'), 'welcome back\n');
    const third = await farm([...args, '--quiet']);
    expect(third.code, third.stderr).toBe(0);
    expect(third.stderr).toMatch(new RegExp(`building: key changed since build ${manifest.last_run_uuid} \\(changed: source\\.context\\)`));
    expect((await readdir(builds)).length).toBe(before.length + 1);
  });

  it('refuses a context with a symlink out of it before anything is built or recorded', async () => {
    const base = await labInventoryVariant();
    const context = join(base.dir, 'src');
    await mkdir(context, { recursive: true });
    await writeFile(join(context, 'Containerfile'), 'FROM localhost/farm-lab/base:latest\n');
    execFileSync('ln', ['-s', '../../etc/shadow', join(context, 'shadow')]);
    const variant = await labInventoryVariant((doc) => {
      doc.source.containerfile = join(context, 'Containerfile');
      doc.source.context = context;
      doc.arches = { s390x: { types: ['qcow2'] } };
    });
    const r = await farm(['build', '--arch', 's390x', '-i', variant.file, '--no-upload']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`symlink shadow in the build context ${context} points outside it (to ../../etc/shadow)`);
    await expect(readdir(join(variant.dir, 'builds'))).rejects.toThrow(/ENOENT/);
  });
});
