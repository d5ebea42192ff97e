// The OpenStack uploader against the lab's real Keystone and Glance. What the uploader claims is
// checked independently: with the `openstack` CLI, sha512sum, and the image data read back.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { FarmError } from '../../src/core/errors.ts';
import { openstackTargetSchema } from '../../uploaders/openstack/schema.ts';
import { createOpenStackUploader, type OpenStackUploaderOptions } from '../../uploaders/openstack/index.ts';
import { openstack } from '../../uploaders/openstack/kind.ts';
import type { PublishedImage, UploadContext, UploadProgress } from '../../uploaders/uploader.ts';
import type { Artifact } from '../../src/core/artifact.ts';
import { GLANCE_URL, OPENSTACK_DIR, ensureOpenStack, type LabOpenStack } from '../support/openstack.ts';

const run = promisify(execFile);

const MIB = 1024 * 1024;
const SIZE = 32 * MIB;
const MARKER_OFFSET = 20 * MIB + 4096 + 7;
const RUN_ID = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const MARKER = `farm-openstack-marker-${RUN_ID}`;
const PREFIX = `farm-it-${RUN_ID}`;

let lab: LabOpenStack;
let dir: string;
let disk: string;
let env: NodeJS.ProcessEnv;

/** The real CLI, reading the lab's clouds.yaml: an independent view of Keystone and Glance. */
async function osc(args: string[], cloud = 'lab'): Promise<string> {
  const { stdout } = await run('openstack', ['--os-cloud', cloud, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, OS_CLIENT_CONFIG_FILE: lab.cloudsYaml },
    maxBuffer: 16 << 20,
  });
  return stdout;
}

interface ShownImage {
  id: string;
  name: string;
  status: string;
  size: number;
  disk_format: string;
  container_format: string;
  visibility: string;
  min_disk: number;
  properties: Record<string, unknown>;
}

async function show(id: string): Promise<ShownImage> {
  return JSON.parse(await osc(['image', 'show', id, '-f', 'json'])) as ShownImage;
}

/** Every image of the farm project whose name starts with `prefix`, in any state. */
async function imagesNamed(prefix: string): Promise<{ ID: string; Name: string; Status: string }[]> {
  const all = JSON.parse(await osc(['image', 'list', '--long', '-f', 'json'])) as { ID: string; Name: string; Status: string }[];
  return all.filter((i) => i.Name.startsWith(prefix));
}

function artifact(overrides: Partial<Artifact['disk']> = {}): Artifact {
  return {
    buildId: `build-${RUN_ID}`,
    arch: 'ppc64le',
    type: 'raw',
    imageName: `${PREFIX}-ppc64le`,
    disk: { path: disk, name: 'image/disk.raw', size: SIZE, sha256: '0'.repeat(64), format: 'raw', ...overrides },
    extra: [],
    worker: 'lab-ppc64le',
    builtAt: new Date().toISOString(),
  };
}

function context(signal = AbortSignal.timeout(300_000)): UploadContext & { progress: UploadProgress[]; logs: string[] } {
  const progress: UploadProgress[] = [];
  const logs: string[] = [];
  return {
    signal,
    onProgress: (p) => progress.push({ ...p }),
    log: (m) => logs.push(m),
    tags: { 'farm-build-id': `build-${RUN_ID}` },
    progress,
    logs,
  };
}

const target = (extra: Record<string, unknown> = {}) =>
  openstackTargetSchema.parse({ kind: 'openstack', name: 'lab-glance', cloud: 'lab', image_type: 'raw', os_distro: 'fedora', properties: { hw_firmware_type: 'uefi' }, ...extra });

const fastOpts = (): OpenStackUploaderOptions => ({ env, pollIntervalMs: 200, progressIntervalMs: 0, retry: { minTimeoutMs: 100 } });

beforeAll(async () => {
  lab = await ensureOpenStack();
  dir = mkdtempSync(join(tmpdir(), 'farm-openstack-'));
  disk = join(dir, 'disk.raw');
  // A sparse 32 MiB disk with a marker at a known offset and a little data at both ends.
  const fh = await open(disk, 'w');
  await fh.truncate(SIZE);
  await fh.write(randomBytes(4096), 0, 4096, 0);
  await fh.write(Buffer.from(MARKER), 0, MARKER.length, MARKER_OFFSET);
  await fh.write(randomBytes(4096), 0, 4096, SIZE - 4096);
  await fh.close();
  // Only the lab's clouds.yaml: no stray OS_* variables from the machine.
  env = { OS_CLIENT_CONFIG_FILE: lab.cloudsYaml };
});

afterAll(async () => {
  if (lab) {
    const left = await imagesNamed(PREFIX).catch(() => []);
    for (const img of left) await osc(['image', 'delete', img.ID]).catch(() => {});
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('OpenStack uploader against the lab Keystone and Glance', () => {
  let first: PublishedImage;

  it('uploads a raw disk that Glance stores and verifies', async () => {
    const uploader = createOpenStackUploader(target(), fastOpts());
    expect(openstack.imageType(target())).toBe('raw'); // was uploader.formats, which the seam dropped
    await uploader.preflight(AbortSignal.timeout(60_000));
    const name = `${PREFIX}-password`;
    const ctx = context();
    const published = await uploader.upload(artifact(), name, ctx);
    expect(published).toHaveLength(1);
    first = published[0]!;
    expect(first).toMatchObject({ target: 'lab-glance', kind: 'openstack', location: 'RegionOne', imageName: name, existing: false });
    expect(first.artifactId).toBe(`lab:${first.imageId}`);

    const shown = await show(first.imageId);
    expect(shown).toMatchObject({ name, status: 'active', size: SIZE, disk_format: 'raw', container_format: 'bare', visibility: 'private', min_disk: 1 });
    expect(shown.properties).toMatchObject({
      architecture: 'ppc64le',
      os_distro: 'fedora',
      hw_firmware_type: 'uefi',
      farm_build_id: `build-${RUN_ID}`,
      farm_image_name: name,
      os_hash_algo: 'sha512',
    });
    const { stdout } = await run('sha512sum', [disk]);
    expect(shown.properties.os_hash_value).toBe(stdout.split(' ')[0]);

    // Progress went up to the whole file, never backwards.
    expect(ctx.progress.at(-1)).toMatchObject({ done: SIZE, total: SIZE, sent: SIZE });
    for (let i = 1; i < ctx.progress.length; i++) expect(ctx.progress[i]!.done).toBeGreaterThanOrEqual(ctx.progress[i - 1]!.done);
    expect(ctx.progress.length).toBeGreaterThan(8);
    expect(ctx.logs.join('\n')).toContain('sha512 match');
  });

  it('serves the same bytes back', async () => {
    const token = (await osc(['token', 'issue', '-f', 'value', '-c', 'id'])).trim();
    const res = await fetch(`${GLANCE_URL}/v2/images/${first.imageId}/file`, { headers: { 'X-Auth-Token': token } });
    expect(res.status).toBe(200);
    const data = Buffer.from(await res.arrayBuffer());
    expect(data.length).toBe(SIZE);
    expect(data.subarray(MARKER_OFFSET, MARKER_OFFSET + MARKER.length).toString()).toBe(MARKER);
    expect(data.equals(readFileSync(disk))).toBe(true);
  });

  it('finds the published image by name, and nothing for other names', async () => {
    const uploader = createOpenStackUploader(target(), fastOpts());
    const found = await uploader.find(first.imageName, artifact(), AbortSignal.timeout(60_000));
    expect(found).toEqual([{ ...first, existing: true }]);
    expect(await uploader.find(`${PREFIX}-never-uploaded`, artifact(), AbortSignal.timeout(60_000))).toEqual([]);
  });

  it('works with an application credential, and deletes what it published', async () => {
    const uploader = createOpenStackUploader(target({ cloud: lab.appCredCloud }), fastOpts());
    await uploader.preflight(AbortSignal.timeout(60_000));
    // The application credential acts in the same project: it sees the image uploaded above.
    const found = await uploader.find(first.imageName, artifact(), AbortSignal.timeout(60_000));
    expect(found.map((i) => i.imageId)).toEqual([first.imageId]);
    expect(found[0]!.artifactId).toBe(`lab-appcred:${first.imageId}`);

    const name = `${PREFIX}-appcred`;
    const [img] = await uploader.upload(artifact(), name, context());
    expect((await show(img!.imageId)).status).toBe('active');
    await uploader.delete(img!, AbortSignal.timeout(60_000));
    expect(await imagesNamed(name)).toEqual([]);
    // Deleting again is not an error: the image is gone either way.
    await uploader.delete(img!, AbortSignal.timeout(60_000));
  });

  it('refuses a wrong password with a clear message that holds no password', async () => {
    const doc = parseYaml(readFileSync(lab.cloudsYaml, 'utf8')) as { clouds: Record<string, { auth: { password: string } }> };
    const wrongPassword = `wrong-${randomBytes(8).toString('hex')}`;
    const rightPassword = doc.clouds.lab!.auth.password;
    doc.clouds.lab!.auth.password = wrongPassword;
    const bad = join(dir, 'clouds.yaml');
    writeFileSync(bad, stringifyYaml(doc), { mode: 0o600 });
    const uploader = createOpenStackUploader(target(), { ...fastOpts(), env: { OS_CLIENT_CONFIG_FILE: bad } });
    const err = await uploader.preflight(AbortSignal.timeout(60_000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FarmError);
    const fe = err as FarmError;
    expect(fe.code).toBe('UPLOAD');
    expect(fe.message).toBe("lab-glance: preflight: Keystone refused the credentials for cloud 'lab' (user farm)");
    for (const text of [fe.message, fe.hint ?? '', String(fe.stack)]) {
      expect(text).not.toContain(wrongPassword);
      expect(text).not.toContain(rightPassword);
    }
  });

  it('refuses a file that is not what the build recorded, before creating anything', async () => {
    const uploader = createOpenStackUploader(target(), fastOpts());
    const name = `${PREFIX}-changed`;
    const ctx = context();
    const err = await uploader.upload(artifact({ size: SIZE + 1 }), name, ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FarmError);
    expect((err as FarmError).code).toBe('UPLOAD');
    expect((err as FarmError).message).toContain(`has ${SIZE} bytes but the build recorded ${SIZE + 1}`);
    expect(ctx.logs.join('\n')).not.toContain('created image');
    expect(await imagesNamed(name)).toEqual([]);
  });

  it('removes the image when the upload fails after it was created', async () => {
    const uploader = createOpenStackUploader(target(), fastOpts());
    const name = `${PREFIX}-shrunk`;
    const copy = join(dir, 'shrinking.raw');
    copyFileSync(disk, copy);
    const ctx = context();
    let truncated = false;
    ctx.onProgress = (p) => {
      // The file shrinks under the upload: Glance gets fewer bytes than were declared.
      if (!truncated && p.done >= 8 * MIB) {
        truncated = true;
        truncateSync(copy, 16 * MIB);
      }
    };
    const err = await uploader.upload(artifact({ path: copy }), name, ctx).catch((e: unknown) => e);
    expect(truncated).toBe(true);
    expect(err).toBeInstanceOf(FarmError);
    expect((err as FarmError).code).toBe('UPLOAD');
    expect((err as FarmError).message).toContain('did not match its declared length');
    expect(ctx.logs.join('\n')).toMatch(/removed image \S+ after the failure/);
    expect(await imagesNamed(name)).toEqual([]);
  });

  it('leaves no queued or saving image behind when cancelled mid-stream', async () => {
    const uploader = createOpenStackUploader(target(), fastOpts());
    const name = `${PREFIX}-aborted`;
    const ac = new AbortController();
    const ctx = context(ac.signal);
    let abortedAt = 0;
    ctx.onProgress = (p) => {
      if (!abortedAt && p.done >= 8 * MIB) {
        abortedAt = p.done;
        ac.abort();
      }
    };
    const err = await uploader.upload(artifact(), name, ctx).catch((e: unknown) => e);
    expect(abortedAt).toBeGreaterThan(0);
    expect(err).toBeInstanceOf(FarmError);
    expect((err as FarmError).code).toBe('ABORTED');
    const created = /created image (\S+)/.exec(ctx.logs.join('\n'))?.[1];
    expect(created).toBeDefined();
    expect(await imagesNamed(name)).toEqual([]);
    // Nothing of the farm project is stuck half-way, and the store holds no file for it.
    const stuck = (await imagesNamed('')).filter((i) => i.Status === 'queued' || i.Status === 'saving');
    expect(stuck).toEqual([]);
    const file = join(OPENSTACK_DIR, 'glance', 'images', created!);
    for (let i = 0; i < 50 && existsSync(file); i++) await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(file)).toBe(false);
  });
});
