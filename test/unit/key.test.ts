// The build key: what changes it and what does not, over real files in a temp dir. Image digests
// come through the `inspect` seam (the worker-backed default is exercised on the lab by
// test/integration/if-changed.test.ts).

import { chmod, mkdir, mkdtemp, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { inventorySchema, type LoadedInventory } from '../../src/inventory/schema.ts';
import { computeBuildKey, keyOf, refreshUnresolved, UNRESOLVED, type BuildKey } from '../../src/triggers/key.ts';
import { expandArgs, imageRefs } from '../../src/triggers/image-refs.ts';
import { imageIdentity, repository } from '../../src/triggers/inspect.ts';
import { contextDigest } from '../../src/triggers/context-digest.ts';

const signal = new AbortController().signal;
const BASE = 'quay.io/fedora/fedora-bootc:42';
const BUILDER = 'quay.io/centos-bootc/bootc-image-builder:latest';

let dir: string;
let digests: Map<string, string>;
const inspected: string[] = [];
const inspect = async (ref: string) => {
  inspected.push(ref);
  return digests.get(ref);
};

type Raw = Record<string, any>;
function baseInventory(): Raw {
  return {
    version: 1,
    source: { containerfile: 'src/Containerfile', context: 'src', build_args: { A: '1', B: '2' } },
    builder: { image: BUILDER, rootfs: 'xfs' },
    naming: { name: 'farm' },
    workers: [
      { name: 'w-x86', host: 'x86.example', arch: 'x86_64' },
      { name: 'w-s390x', host: 's390x.example', arch: 's390x' },
    ],
    arches: {
      x86_64: { types: ['ami', 'raw'], targets: [{ kind: 'aws', region: 'us-east-1' }] },
      s390x: { types: ['qcow2'] },
    },
  };
}

function loaded(raw: Raw = baseInventory()): LoadedInventory {
  return { file: join(dir, 'farm.yaml'), dir, inventory: inventorySchema.parse(raw) };
}

async function key(raw?: Raw): Promise<BuildKey> {
  return computeBuildKey(loaded(raw), { signal, inspect });
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'farm-key-'));
  await mkdir(join(dir, 'src', 'files'), { recursive: true });
  await writeFile(join(dir, 'src', 'Containerfile'), `FROM ${BASE}\nCOPY files/ /usr/share/app/\nRUN bootc container lint\n`);
  await writeFile(join(dir, 'src', 'files', 'motd'), 'hello\n');
  await writeFile(join(dir, 'src', 'files', 'run.sh'), '#!/bin/sh\necho hi\n');
  digests = new Map([
    [BASE, 'quay.io/fedora/fedora-bootc@sha256:' + 'a'.repeat(64)],
    [BUILDER, 'quay.io/centos-bootc/bootc-image-builder@sha256:' + 'b'.repeat(64)],
  ]);
  inspected.length = 0;
});

describe('computeBuildKey', () => {
  it('is the same for the same inputs, whatever order the build args are written in', async () => {
    const a = await key();
    const raw = baseInventory();
    raw.source.build_args = { B: '2', A: '1' };
    const b = await key(raw);
    expect(a.key).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(b.key).toBe(a.key);
    expect(a.key).toBe(keyOf(a.parts));
    expect(a.unresolved).toEqual([]);
    expect(a.parts[`base.${BASE}`]).toBe(digests.get(BASE));
    expect(a.parts['builder.image.digest']).toBe(digests.get(BUILDER));
    expect(inspected.sort()).toEqual([BASE, BASE, BUILDER, BUILDER].sort());
  });

  it('changes with a context file, its mode, a Containerfile line or a new file', async () => {
    const k0 = (await key()).key;
    await writeFile(join(dir, 'src', 'files', 'motd'), 'hello!\n');
    const k1 = (await key()).key;
    expect(k1).not.toBe(k0);
    await chmod(join(dir, 'src', 'files', 'run.sh'), 0o755);
    const k2 = (await key()).key;
    expect(k2).not.toBe(k1);
    await writeFile(join(dir, 'src', 'Containerfile'), `FROM ${BASE}\nCOPY files/ /usr/share/app/\nRUN bootc container lint && true\n`);
    const k3 = (await key()).key;
    expect(k3).not.toBe(k2);
    await mkdir(join(dir, 'src', 'files', 'empty'));
    const k4 = (await key()).key;
    expect(k4).not.toBe(k3);
    // A rename with the same content is a change too.
    await writeFile(join(dir, 'src', 'files', 'a'), 'x');
    const k5 = (await key()).key;
    const { rename } = await import('node:fs/promises');
    await rename(join(dir, 'src', 'files', 'a'), join(dir, 'src', 'files', 'b'));
    expect((await key()).key).not.toBe(k5);
  });

  it('does not change when a file is only touched', async () => {
    const k0 = (await key()).key;
    await utimes(join(dir, 'src', 'files', 'motd'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    expect((await key()).key).toBe(k0);
  });

  it('changes with build args, types, rootfs, extra args, the builder config, naming and arches', async () => {
    const k0 = (await key()).key;
    const variants: Array<(r: Raw) => void> = [
      (r) => (r.source.build_args.A = '3'),
      (r) => (r.source.build_args.C = ''),
      (r) => (r.arches.s390x.types = ['qcow2', 'raw']),
      (r) => (r.builder.rootfs = 'ext4'),
      (r) => (r.builder.extra_args = ['--use-librepo=True']),
      (r) => (r.builder.image = 'quay.io/other/bib:1'),
      (r) => (r.naming.name = 'other'),
      (r) => (r.naming.template = '{name}-{build_id}-{arch}'),
      (r) => (r.arches.ppc64le = { types: ['raw'] }),
    ];
    const keys = new Set([k0]);
    for (const change of variants) {
      const raw = baseInventory();
      change(raw);
      keys.add((await key(raw)).key);
    }
    expect(keys.size).toBe(variants.length + 1);

    await writeFile(join(dir, 'bib.toml'), '[customizations]\n');
    const withConfig = baseInventory();
    withConfig.builder.config = 'bib.toml';
    const c1 = (await key(withConfig)).key;
    expect(keys.has(c1)).toBe(false);
    await writeFile(join(dir, 'bib.toml'), '[customizations]\nkernel = {}\n');
    expect((await key(withConfig)).key).not.toBe(c1);
  });

  it('follows the types a target implies, but not where the images go', async () => {
    const noTypes = () => {
      const r = baseInventory();
      delete r.arches.x86_64.types;
      return r;
    };
    const k0 = (await key(noTypes())).key;
    const region = noTypes();
    region.arches.x86_64.targets[0].region = 'eu-west-1';
    region.arches.x86_64.targets[0].tags = { team: 'x' };
    expect((await key(region)).key).toBe(k0);
    // A libvirt target needs qcow2 on top of AWS's ami: new images, new key.
    const more = noTypes();
    more.arches.x86_64.targets.push({ kind: 'libvirt', hypervisors: [{ uri: 'qemu+ssh://root@hv/system', arch: 'x86_64' }] });
    expect((await key(more)).key).not.toBe(k0);
  });

  it('ignores worker hosts, worker settings, coordinator settings and targets when types are explicit', async () => {
    const k0 = (await key()).key;
    const raw = baseInventory();
    raw.workers[0].host = '10.0.0.99';
    raw.workers[0].port = 2222;
    raw.workers[0].max_builds = 3;
    raw.workers.push({ name: 'w-x86-b', host: 'x86b.example', arch: 'x86_64' });
    raw.settings = { keep_remote: true, connect_timeout_s: 5, builds_dir: 'elsewhere' };
    raw.builder.pull = 'always';
    raw.arches.x86_64.targets = [{ kind: 'openstack', cloud: 'lab' }];
    raw.arches.s390x.targets = [{ kind: 'openstack', cloud: 'lab', image_type: 'qcow2' }];
    expect((await key(raw)).key).toBe(k0);
  });

  it('changes with a base or builder image digest, and records unresolvable ones', async () => {
    const k0 = (await key()).key;
    digests.set(BASE, 'quay.io/fedora/fedora-bootc@sha256:' + 'c'.repeat(64));
    const k1 = (await key()).key;
    expect(k1).not.toBe(k0);
    digests.set(BUILDER, 'sha256:' + 'd'.repeat(64));
    const k2 = (await key()).key;
    expect(k2).not.toBe(k1);

    digests.clear();
    const unresolved = await key();
    expect(unresolved.parts[`base.${BASE}`]).toBe(UNRESOLVED);
    expect(unresolved.parts['builder.image.digest']).toBe(UNRESOLVED);
    expect(unresolved.unresolved.sort()).toEqual([BASE, BUILDER].sort());
    // Still a key over the files: they keep moving it.
    await writeFile(join(dir, 'src', 'files', 'motd'), 'changed\n');
    expect((await key()).key).not.toBe(unresolved.key);
    // An inspect that throws counts as unresolved, not as a failure.
    const failing = await computeBuildKey(loaded(), { signal, inspect: async () => Promise.reject(new Error('boom')) });
    expect(failing.unresolved).toHaveLength(2);
  });

  it('does not ask for a digest-pinned base: the reference names its content', async () => {
    const pinned = `quay.io/fedora/fedora-bootc@sha256:${'e'.repeat(64)}`;
    await writeFile(join(dir, 'src', 'Containerfile'), `FROM ${pinned}\n`);
    const k = await key();
    expect(k.parts[`base.${pinned}`]).toBe(`sha256:${'e'.repeat(64)}`);
    expect(inspected).toEqual([BUILDER]);
  });

  it('honours .containerignore (and .dockerignore when there is none) like podman', async () => {
    await writeFile(join(dir, 'src', '.containerignore'), '# scratch files\n*.log\nfiles/cache\n!files/cache/keep\n');
    await mkdir(join(dir, 'src', 'files', 'cache'));
    await writeFile(join(dir, 'src', 'build.log'), 'one');
    await writeFile(join(dir, 'src', 'files', 'cache', 'blob'), 'one');
    await writeFile(join(dir, 'src', 'files', 'cache', 'keep'), 'one');
    const k0 = await key();
    expect(k0.notes.join(' ')).toMatch(/\.containerignore honoured/);
    await writeFile(join(dir, 'src', 'build.log'), 'two');
    await writeFile(join(dir, 'src', 'files', 'cache', 'blob'), 'two');
    expect((await key()).key).toBe(k0.key);
    // Re-included by "!": it counts.
    await writeFile(join(dir, 'src', 'files', 'cache', 'keep'), 'two');
    const k1 = (await key()).key;
    expect(k1).not.toBe(k0.key);
    // Only the root's *.log is ignored (Docker semantics, not gitignore's).
    await writeFile(join(dir, 'src', 'files', 'deep.log'), 'x');
    expect((await key()).key).not.toBe(k1);

    const { rm } = await import('node:fs/promises');
    await rm(join(dir, 'src', '.containerignore'));
    await writeFile(join(dir, 'src', '.dockerignore'), 'files/motd\n');
    const d0 = await key();
    expect(d0.notes.join(' ')).toMatch(/\.dockerignore honoured/);
    await writeFile(join(dir, 'src', 'files', 'motd'), 'ignored change\n');
    expect((await key()).key).toBe(d0.key);
  });

  it('leaves out .git and a builds directory inside the context', async () => {
    const raw = baseInventory();
    raw.settings = { builds_dir: 'src/builds' };
    await mkdir(join(dir, 'src', 'builds', '20261121t101500z'), { recursive: true });
    await mkdir(join(dir, 'src', '.git'));
    const k0 = (await key(raw)).key;
    await writeFile(join(dir, 'src', 'builds', '20261121t101500z', 'state.json'), '{}');
    await writeFile(join(dir, 'src', '.git', 'FETCH_HEAD'), 'abc');
    expect((await key(raw)).key).toBe(k0);
  });

  it('streams large files: a 64 MiB file is digested, and a one-byte change in it counts', async () => {
    const big = Buffer.alloc(64 << 20, 7);
    await writeFile(join(dir, 'src', 'files', 'big.bin'), big);
    const a = await contextDigest({ contextDir: join(dir, 'src') }, signal);
    big[big.length - 1] = 8;
    await writeFile(join(dir, 'src', 'files', 'big.bin'), big);
    const b = await contextDigest({ contextDir: join(dir, 'src') }, signal);
    expect(a.bytes).toBeGreaterThan(64 << 20);
    expect(b.digest).not.toBe(a.digest);
  });

  it('fails clearly when the context is missing', async () => {
    const raw = baseInventory();
    raw.source.context = 'nope';
    await expect(key(raw)).rejects.toThrow(/build context .*nope cannot be read/);
  });

  it('refreshUnresolved resolves what a build pulled and keeps every other part', async () => {
    digests.delete(BASE);
    const before = await key();
    expect(before.unresolved).toEqual([BASE]);
    // The build pulled the base; meanwhile a source file changed (it must not leak into the key).
    digests.set(BASE, 'quay.io/fedora/fedora-bootc@sha256:' + 'f'.repeat(64));
    await writeFile(join(dir, 'src', 'files', 'motd'), 'edited during the build\n');
    const after = await refreshUnresolved(loaded(), before, { signal, inspect });
    expect(after.unresolved).toEqual([]);
    expect(after.parts[`base.${BASE}`]).toBe(digests.get(BASE));
    expect(after.parts['source.context']).toBe(before.parts['source.context']);
    expect(after.key).toBe(keyOf(after.parts));
    expect(after.key).not.toBe(before.key);
  });
});

describe('imageRefs', () => {
  it('expands ARGs declared before the first FROM, overridden by build args', () => {
    const text = [
      'ARG BASE=quay.io/fedora/fedora-bootc',
      'ARG TAG=41',
      'FROM --platform=$BUILDPLATFORM ${BASE}:${TAG} AS build',
      'RUN echo \\',
      '  continued',
      'FROM build AS final',
      'FROM scratch',
      'FROM ${MIRROR:-docker.io}/library/busybox:1',
      'COPY --from=build /x /x',
      'COPY --from=0 /x /x',
      'COPY --from=quay.io/tools/helper:2 /bin/h /bin/h',
      'FROM $BASE:$TAG',
    ].join('\n');
    expect(imageRefs(text, {})).toEqual({
      refs: ['quay.io/fedora/fedora-bootc:41', 'docker.io/library/busybox:1', 'quay.io/tools/helper:2'],
      unexpanded: [],
    });
    expect(imageRefs(text, { TAG: '42', UNDECLARED: 'x' }).refs[0]).toBe('quay.io/fedora/fedora-bootc:42');
  });

  it('keeps per-arch and unsupported forms as written, unexpanded', () => {
    expect(imageRefs('FROM quay.io/x/base:${TARGETARCH}\nFROM ${B#x}\n', {})).toEqual({
      refs: [],
      unexpanded: ['quay.io/x/base:${TARGETARCH}', '${B#x}'],
    });
  });

  it('honours the escape directive and stage names case-insensitively', () => {
    const text = '# escape=`\nFROM quay.io/a/b:1 AS Base\nFROM base\nRUN echo `\n  hi\n';
    expect(imageRefs(text, {}).refs).toEqual(['quay.io/a/b:1']);
  });

  it('expandArgs handles $X, ${X}, ${X:-w} and ${X:+w}', () => {
    const v = new Map([['A', 'a'], ['E', '']]);
    expect(expandArgs('$A-${A}-${E:-d}-${A:+p}-${E:+p}-${U}', v)).toBe('a-a-d-p--');
  });
});

describe('image identity', () => {
  it('takes the registry digest of the reference\'s repository, else the image id', () => {
    expect(repository('quay.io:443/a/b:1')).toBe('quay.io:443/a/b');
    expect(repository('a/b@sha256:' + '0'.repeat(64))).toBe('a/b');
    const info = { Id: 'sha256:' + '1'.repeat(64), RepoDigests: ['z.io/mirror/b@sha256:' + '2'.repeat(64), 'quay.io/a/b@sha256:' + '3'.repeat(64)] };
    expect(imageIdentity('quay.io/a/b:1', info)).toBe('quay.io/a/b@sha256:' + '3'.repeat(64));
    expect(imageIdentity('localhost/x:1', { Id: 'sha256:' + '1'.repeat(64), RepoDigests: [] })).toBe('sha256:' + '1'.repeat(64));
  });
});
