// The build context walk (workers/podman/context.ts): what the tar sends and the key digests, over
// real files in a temp dir. The ignore-file cases were checked against podman 4.3 itself: a
// `podman build` with `COPY . /ctx` on a lab host copied exactly PODMAN_COPIED below (the lab's
// integration test test/integration/context.test.ts checks what reaches a worker through the farm).

import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { beforeEach, describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { contextDigest } from '../../src/triggers/context-digest.ts';
import { contextTar } from '../../workers/podman/build.ts';
import { measureContext, walkContext, type ContextSource } from '../../workers/podman/context.ts';

const signal = new AbortController().signal;
let dir: string;

async function tree(files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    if (path.endsWith('/')) await mkdir(join(dir, path), { recursive: true });
    else await writeFile(join(dir, path), content);
  }
}

/** Every entry the walk yields: 'f path', 'd path' or 'l path -> target'. */
async function walked(source: Partial<ContextSource> = {}): Promise<string[]> {
  const walk = await walkContext({ contextDir: dir, ...source }, signal);
  const out: string[] = [];
  for await (const e of walk.entries) out.push(e.kind === 'symlink' ? `l ${e.rel} -> ${e.target}` : `${e.kind[0]} ${e.rel}`);
  return out;
}

const files = (entries: string[]) => entries.filter((e) => e.startsWith('f ')).map((e) => e.slice(2));

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'farm-ctx-'));
});

// The context and ignore file of the podman check, and the files podman's COPY took.
const PODMAN_CASE: Record<string, string> = {
  'Containerfile': 'FROM scratch\nCOPY . /ctx\n',
  '.containerignore': [
    '# comment line',
    '**/*.log',
    '!sub/deep/c.log',
    'cache',
    '!cache/keep',
    'docs/tmp/',
    '/lead',
    'trail2/',
    'star/**/*.md',
    'big.bin',
    'ws/trailing   ',
    '.containerignore',
    'Containerfile',
    '',
  ].join('\n'),
  'a.log': '1', 'sub/b.log': '2', 'sub/deep/c.log': '3', 'cache/blob': '4', 'cache/keep': '5', 'cache/inner/x': '6',
  'docs/readme': 'r', 'docs/tmp/junk': 'j', 'lead/file': 'l', 'nested/lead/file': 'n', 'trail/file': 't', 'trail2/file': 't',
  'keepdir/a': 'a', 'keepdir/b': 'b', 'star/top.md': 'm', 'star/x/y/z.md': 'm', 'star/x/y/z.txt': 'z', 'ws/trailing': 'w',
  'top.txt': 'x', 'big.bin': 'big',
};
const PODMAN_COPIED = [
  'cache/keep', 'docs/readme', 'keepdir/a', 'keepdir/b', 'nested/lead/file', 'star/x/y/z.txt', 'sub/deep/c.log', 'top.txt', 'trail/file',
];

describe('walkContext: the ignore file', () => {
  it('leaves out what podman leaves out: **, ! under an excluded dir, trailing and leading /, spaces', async () => {
    await tree(PODMAN_CASE);
    const entries = await walked({ containerfile: join(dir, 'Containerfile') });
    // The Containerfile and the ignore file travel even when listed (podman sends them; its COPY skips them).
    expect(files(entries)).toEqual(['.containerignore', 'Containerfile', ...PODMAN_COPIED]);
    // An excluded directory is not sent as an entry, only what is re-included below it.
    expect(entries).not.toContain('d cache');
    expect(entries).toContain('d ws');
    expect(entries).not.toContain('d docs/tmp');
  });

  it('matches case-sensitively, and *.log only at the root (Docker semantics, not gitignore)', async () => {
    await tree({ '.containerignore': '*.log\nREADME\n', 'x.log': '', 'X.LOG': '', 'readme': '', 'README': '', 'sub/y.log': '' });
    expect(files(await walked())).toEqual(['.containerignore', 'X.LOG', 'readme', 'sub/y.log']);
  });

  it('prefers .containerignore over .dockerignore, and reads .dockerignore when alone', async () => {
    await tree({ '.containerignore': 'a\n', '.dockerignore': 'b\n', a: '', b: '' });
    expect(files(await walked())).toEqual(['.containerignore', '.dockerignore', 'b']);
    const { rm } = await import('node:fs/promises');
    await rm(join(dir, '.containerignore'));
    expect(files(await walked())).toEqual(['.dockerignore', 'a']);
    expect((await walkContext({ contextDir: dir }, signal)).ignoreFile).toBe('.dockerignore');
  });

  it('re-includes below ignored directories through globs, ** and a later line, and the last matching line wins', async () => {
    await tree({
      '.containerignore': 'node_modules\n!node_modules/pkg/*.keep\nvendor\n!**/LICENSE\nout\n!out\nout/tmp\n',
      'node_modules/pkg/a.keep': '', 'node_modules/pkg/a.js': '', 'node_modules/other/b.keep': '',
      'vendor/lib/LICENSE': '', 'vendor/lib/x.c': '',
      'out/result': '', 'out/tmp/scratch': '',
    });
    expect(files(await walked())).toEqual(['.containerignore', 'node_modules/pkg/a.keep', 'out/result', 'vendor/lib/LICENSE']);
  });

  it('sends the Containerfile even when it sits in an ignored directory', async () => {
    await tree({ '.containerignore': 'build\n', 'build/Containerfile': 'FROM scratch\n', 'build/other': '' });
    expect(files(await walked({ containerfile: join(dir, 'build', 'Containerfile') }))).toEqual(['.containerignore', 'build/Containerfile']);
  });
});

describe('walkContext: never sent', () => {
  it('.git anywhere, .lab at the root and the excluded paths, whatever the ignore file re-includes', async () => {
    await tree({
      '.containerignore': '!.git\n!.lab\n!builds\n',
      '.git/HEAD': 'ref', 'sub/.git': 'gitdir: ../.git/modules/sub', 'sub/file': '',
      '.lab/ssh/id_ed25519': 'PRIVATE KEY', 'docs/.lab/notes': 'kept: only the root .lab is the lab',
      'builds/20261121t101500z/x86_64/ami/disk.raw': 'disk', 'src/main.c': '',
    });
    const entries = await walked({ exclude: [join(dir, 'builds')] });
    expect(files(entries)).toEqual(['.containerignore', 'docs/.lab/notes', 'src/main.c', 'sub/file']);
    expect(entries.some((e) => /\.git|builds|^d \.lab/.test(e))).toBe(false);
  });

  it('skips sockets and fifos, as podman does', async () => {
    await tree({ kept: '' });
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    expect(await walked()).toEqual(['f kept']);
  });
});

describe('walkContext: symlinks', () => {
  it('sends a link inside the context as a link, and an absolute one as it is (a path in the image)', async () => {
    await tree({ 'etc/motd': 'hi', 'rootfs/etc/systemd/system/multi-user.target.wants/': '' });
    await symlink('etc/motd', join(dir, 'motd'));
    await symlink('../etc/missing', join(dir, 'rootfs', 'dangling-inside'));
    await symlink('/usr/lib/systemd/system/x.service', join(dir, 'rootfs/etc/systemd/system/multi-user.target.wants/x.service'));
    const entries = await walked();
    expect(entries).toContain('l motd -> etc/motd');
    expect(entries).toContain('l rootfs/dangling-inside -> ../etc/missing');
    expect(entries).toContain('l rootfs/etc/systemd/system/multi-user.target.wants/x.service -> /usr/lib/systemd/system/x.service');
  });

  it('refuses a link that climbs out of the context, naming the link and its target', async () => {
    await tree({ 'sub/file': '' });
    await symlink('../../.ssh/id_ed25519', join(dir, 'sub', 'key'));
    const err = (await walked().catch((e: unknown) => e)) as FarmError;
    expect(err).toBeInstanceOf(FarmError);
    expect(err.code).toBe('INVENTORY');
    expect(err.message).toBe(`symlink sub/key in the build context ${dir} points outside it (to ../../.ssh/id_ed25519)`);
    expect(err.hint).toMatch(/list sub\/key in \.containerignore/);
    // Nothing is digested either: the key refuses the same context.
    await expect(contextDigest({ contextDir: dir }, signal)).rejects.toThrow(/symlink sub\/key .* points outside it/);
  });

  it('follows the context\'s own links to see where a link really leads', async () => {
    await tree({ secret: '' });
    await symlink('.', join(dir, 'here')); // the root itself
    await symlink('here/../outside', join(dir, 'sneaky')); // lexically inside, really ../outside
    await expect(walked()).rejects.toThrow('symlink sneaky in the build context');
  });

  it('does not check a link the ignore file leaves out: it is not sent', async () => {
    await tree({ '.containerignore': 'up\n' });
    await symlink('../elsewhere', join(dir, 'up'));
    expect(await walked()).toEqual(['f .containerignore']);
  });
});

describe('the tar and the digest: one walk', () => {
  async function entriesOf(tar: Readable): Promise<Array<{ name: string; type: string; linkname?: string | null; body: string }>> {
    const extract = tarStream.extract();
    const out: Array<{ name: string; type: string; linkname?: string | null; body: string }> = [];
    const done = new Promise<void>((resolve, reject) => {
      extract.on('entry', (h, stream, next) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c) => chunks.push(c as Buffer));
        stream.on('end', () => {
          out.push({ name: h.name, type: h.type ?? 'file', linkname: h.linkname, body: Buffer.concat(chunks).toString() });
          next();
        });
      });
      extract.on('finish', resolve);
      extract.on('error', reject);
    });
    tar.pipe(extract as unknown as NodeJS.WritableStream);
    await done;
    return out;
  }

  it('sends exactly the walk, file contents intact, and digests it as the key does', async () => {
    await tree({ ...PODMAN_CASE, '.git/config': 'x' });
    await symlink('top.txt', join(dir, 'top-link'));
    const source = { contextDir: dir, containerfile: join(dir, 'Containerfile') };
    const { tar, dockerfile, sent } = await contextTar(source, signal);
    const entries = await entriesOf(tar);
    const walk = await walked(source);
    expect(entries.map((e) => `${e.type === 'directory' ? 'd' : e.type === 'symlink' ? 'l' : 'f'} ${e.name.replace(/\/$/, '')}${e.linkname ? ` -> ${e.linkname}` : ''}`)).toEqual(walk);
    expect(entries.find((e) => e.name === 'sub/deep/c.log')!.body).toBe('3');
    expect(dockerfile).toBe('Containerfile');
    const summary = await sent;
    expect(summary).toEqual(await contextDigest(source, signal));
    expect(summary).toMatchObject({ files: 11, ignoreFile: '.containerignore' });
    expect(await measureContext(source, signal)).toEqual({ files: 11, bytes: summary.bytes, ignoreFile: '.containerignore' });
  });

  it('adds a Containerfile from outside the context under its own name, outside the digest', async () => {
    await tree({ 'ctx/a': 'a', 'Containerfile.outside': 'FROM scratch\n' });
    const source = { contextDir: join(dir, 'ctx'), containerfile: join(dir, 'Containerfile.outside') };
    const { tar, dockerfile, sent } = await contextTar(source, signal);
    const entries = await entriesOf(tar);
    expect(dockerfile).toBe('.farm.Containerfile');
    expect(entries.map((e) => [e.name, e.body])).toEqual([['a', 'a'], ['.farm.Containerfile', 'FROM scratch\n']]);
    expect((await sent).digest).toBe((await contextDigest(source, signal)).digest);
  });

  it('streams: while the reader waits, the walk waits (the context is never read into memory)', async () => {
    await tree({ 'a-first': 'x' });
    await writeFile(join(dir, 'big.bin'), '');
    await truncate(join(dir, 'big.bin'), 100 << 20); // sparse: reading it costs no disk
    const held = () => process.memoryUsage().arrayBuffers;
    const before = held();
    const { tar, sent } = await contextTar({ contextDir: dir, containerfile: join(dir, 'a-first') }, signal);
    let finished = false;
    sent.then(() => (finished = true), () => undefined);
    let read = 0;
    await new Promise<void>((resolve) => {
      tar.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read > 1 << 20) {
          tar.pause();
          resolve();
        }
      });
    });
    // Ample time to read 100 MiB of holes, had the tar not waited for its reader.
    await new Promise((r) => setTimeout(r, 500));
    expect(finished).toBe(false);
    expect(held() - before).toBeLessThan(32 << 20);
    tar.destroy();
    await expect(sent).rejects.toThrow();
  });

  it('fails the tar with the walk\'s own error when a link leads out', async () => {
    await tree({ a: 'a' });
    await symlink('../x', join(dir, 'zz-out'));
    const { tar, sent } = await contextTar({ contextDir: dir, containerfile: join(dir, 'a') }, signal);
    tar.resume();
    await expect(sent).rejects.toThrow('symlink zz-out in the build context');
  });
});
