// `farm build --if-changed` on the lab: the key is computed from the files and from the digests
// the s390x worker's podman reports; an unchanged source builds nothing, quickly, and a changed
// one (or --force) builds. One arch keeps it short.

import { execFile } from 'node:child_process';
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { farm } from '../support/cli.ts';
import { ensureLab, labInventoryVariant, LAB_INVENTORY } from '../support/lab.ts';
import { ensureOpenStack } from '../support/openstack.ts';
import type { PublishedRecord } from '../../src/records/history.ts';
import type { Manifest } from '../../src/records/manifest.ts';
import type { BuildState } from '../../src/records/state.ts';

beforeAll(async () => {
  await ensureLab();
});

// Only s390x, and no upload targets: the lab inventory's own sections may carry targets (with
// paths relative to it) that these tests do not exercise.
const S390X_ONLY = { s390x: { types: ['qcow2'] } };

async function buildDirs(builds: string): Promise<string[]> {
  return (await readdir(builds).catch(() => [] as string[])).sort();
}

async function stateOf(dir: string): Promise<BuildState> {
  return JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as BuildState;
}

describe('farm build --if-changed on the lab', () => {
  it('builds once, then is up to date until the context changes or --force is given', async () => {
    // A private copy of the lab's source, so the test can change it.
    const variant0 = await labInventoryVariant();
    const context = join(variant0.dir, 'src');
    await cp(join(LAB_INVENTORY, '..', 'lab'), context, { recursive: true });
    const variant = await labInventoryVariant((doc) => {
      doc.source.containerfile = join(context, 'Containerfile');
      doc.source.context = context;
      doc.arches = S390X_ONLY;
    });
    const builds = join(variant.dir, 'builds');
    const args = ['build', '--if-changed', '--arch', 's390x', '-i', variant.file, '--quiet'];

    // 1. Nothing built yet: it builds and records the key.
    const first = await farm(args);
    expect(first.code, first.stderr).toBe(0);
    const [firstId] = await buildDirs(builds);
    expect(firstId).toBeDefined();
    const firstState = await stateOf(join(builds, firstId!));
    expect(firstState.status).toBe('succeeded');
    expect(firstState.key).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(first.stderr).toContain(`build key ${firstState.key}`);
    expect(first.stderr).toMatch(/building: no successful build yet/);
    const manifest = JSON.parse(await readFile(join(builds, firstId!, 'manifest.json'), 'utf8')) as Manifest;
    expect(manifest.builds.map((b) => b.custom_data.build_key)).toEqual([firstState.key]);
    // The parts are on record: the builder's and the base's digests came from the s390x worker.
    const keyFile = JSON.parse(await readFile(join(builds, firstId!, 'key.json'), 'utf8')) as { key: string; parts: Record<string, string> };
    expect(keyFile.key).toBe(firstState.key);
    expect(keyFile.parts['builder.image.digest']).toMatch(/sha256:[0-9a-f]{64}$/);
    expect(keyFile.parts['base.localhost/farm-lab/base:latest']).toMatch(/sha256:[0-9a-f]{64}$/);
    expect(keyFile.parts['arches']).toBe('s390x');

    // 2. Same inputs: up to date, quickly, and no new build.
    const t0 = Date.now();
    const second = await farm(args);
    const seconds = (Date.now() - t0) / 1000;
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain(`up to date: build ${firstId} has key ${firstState.key} (use --force to rebuild)`);
    expect(seconds).toBeLessThan(15);
    expect(await buildDirs(builds)).toEqual([firstId]);

    // 3. A context file changes: it builds, under a new key.
    await writeFile(join(context, 'motd'), `changed at ${new Date().toISOString()}\n`);
    const third = await farm(args);
    expect(third.code, third.stderr).toBe(0);
    expect(third.stderr).toMatch(new RegExp(`building: key changed since build ${firstId} \\(changed: source\\.context\\)`));
    const afterChange = await buildDirs(builds);
    expect(afterChange).toHaveLength(2);
    const thirdState = await stateOf(join(builds, afterChange[1]!));
    expect(thirdState.status).toBe('succeeded');
    expect(thirdState.key).toMatch(/^sha256:/);
    expect(thirdState.key).not.toBe(firstState.key);

    // And now that is up to date too.
    const fourth = await farm(args);
    expect(fourth.code, fourth.stderr).toBe(0);
    expect(fourth.stderr).toContain(`up to date: build ${afterChange[1]} has key ${thirdState.key}`);
    expect(await buildDirs(builds)).toHaveLength(2);

    // 4. --force builds anyway, recording the same key.
    const forced = await farm([...args, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).toMatch(/building: forced/);
    const afterForce = await buildDirs(builds);
    expect(afterForce).toHaveLength(3);
    const forcedState = await stateOf(join(builds, afterForce[2]!));
    expect(forcedState.status).toBe('succeeded');
    expect(forcedState.key).toBe(thirdState.key);

    // Nothing was published (the lab inventory has no targets): farm images says so.
    const images = await farm(['images', '-i', variant.file]);
    expect(images.code, images.stderr).toBe(0);
    expect(images.stdout).toBe('');
    expect(images.stderr).toMatch(/no published images in .*builds: `farm build/);
    const json = await farm(['images', '-i', variant.file, '--json']);
    expect(JSON.parse(json.stdout)).toEqual([]);
  });

  it('a plain build records the key too, and an unreachable worker leaves digests unresolved without failing the key', async () => {
    const variant = await labInventoryVariant((doc) => {
      const w = doc.workers.find((x: { arch: string }) => x.arch === 's390x');
      w.port = 2222; // nothing listens there
      doc.arches = S390X_ONLY;
    });
    const r = await farm(['build', '--arch', 's390x', '-i', variant.file, '--quiet']);
    // The build itself fails (no worker), but the key was computed from the files and said so.
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/build key sha256:[0-9a-f]{64}/);
    expect(r.stderr).toMatch(/digest unresolved for localhost\/farm-lab\/bootc-image-builder:latest, localhost\/farm-lab\/base:latest/);
    const [id] = await buildDirs(join(variant.dir, 'builds'));
    const state = await stateOf(join(variant.dir, 'builds', id!));
    expect(state.key).toMatch(/^sha256:[0-9a-f]{64}$/);
    const keyFile = JSON.parse(await readFile(join(variant.dir, 'builds', id!, 'key.json'), 'utf8')) as { parts: Record<string, string> };
    expect(keyFile.parts['builder.image.digest']).toBe('unresolved');
  });
});

describe('farm images on the lab', () => {
  it('lists an image the build published to Glance, with the build that made it', async () => {
    const lab = await ensureOpenStack();
    const env = { OS_CLIENT_CONFIG_FILE: lab.cloudsYaml };
    const variant = await labInventoryVariant((doc) => {
      doc.arches = { s390x: { types: ['qcow2'], targets: [{ kind: 'openstack', name: 'lab-glance', cloud: lab.cloud }] } };
    });
    const r = await farm(['build', '--if-changed', '--arch', 's390x', '-i', variant.file, '--quiet', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const manifest = JSON.parse(r.stdout) as Manifest;
    const upload = manifest.builds.find((b) => b.target === 'lab-glance')!;
    expect(upload).toBeDefined();
    const glanceId = upload.custom_data.image_id!;
    try {
      const table = await farm(['images', '-i', variant.file]);
      expect(table.code, table.stderr).toBe(0);
      expect(table.stdout).toMatch(/^TARGET\s+KIND\s+WHERE\s+IMAGE NAME\s+IMAGE ID\s+ARCH\s+BUILD\s+WHEN\n/);
      expect(table.stdout).toMatch(
        new RegExp(`lab-glance\\s+openstack\\s+RegionOne\\s+${upload.image_name}\\s+${glanceId}\\s+s390x\\s+${manifest.last_run_uuid}\\s+\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}Z`),
      );
      const json = JSON.parse((await farm(['images', '-i', variant.file, '--json'])).stdout) as PublishedRecord[];
      expect(json).toEqual([
        expect.objectContaining({ buildId: manifest.last_run_uuid, arch: 's390x', type: 'qcow2', target: 'lab-glance', kind: 'openstack', imageId: glanceId, imageName: upload.image_name, existing: false }),
      ]);
      // Glance itself has that image under that name.
      const { stdout } = await promisify(execFile)('openstack', ['--os-cloud', lab.cloud, 'image', 'show', glanceId, '-f', 'json'], { env: { ...process.env, ...env } });
      expect((JSON.parse(stdout) as { name: string }).name).toBe(upload.image_name);
    } finally {
      await promisify(execFile)('openstack', ['--os-cloud', lab.cloud, 'image', 'delete', glanceId], { env: { ...process.env, ...env } }).catch(() => undefined);
    }
  });
});
