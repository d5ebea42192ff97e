import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { openstackTargetSchema } from '../../uploaders/openstack/schema.ts';
import { diskFor, imageFields, propertyProblems, virtualSize } from '../../uploaders/openstack/image.ts';
import type { Artifact } from '../../src/core/artifact.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'farm-os-image-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function artifact(format: 'raw' | 'qcow2', size = 3 * 1024 ** 3): Artifact {
  return {
    buildId: '20260101-000000-abcd',
    arch: 's390x',
    type: format,
    imageName: 'farm-20260101-000000-s390x',
    disk: { path: join(dir, `disk.${format}`), name: `${format}/disk.${format}`, size, sha256: '0'.repeat(64), format },
    extra: [],
    worker: 'lab-s390x',
    builtAt: '2026-01-01T00:00:00Z',
  };
}

describe('imageFields', () => {
  it('describes the image from the build and the target', () => {
    const target = openstackTargetSchema.parse({
      kind: 'openstack',
      cloud: 'lab',
      image_type: 'raw',
      visibility: 'shared',
      os_distro: 'fedora',
      properties: { hw_firmware_type: 'uefi' },
    });
    const fields = imageFields({
      target,
      artifact: artifact('raw'),
      imageName: 'copr-builder-s390x-20260101_000000',
      tags: { 'farm-build-id': 'ignored-by-artifact', team: 'copr' },
      virtualSize: 3 * 1024 ** 3 + 1,
    });
    expect(fields).toEqual({
      name: 'copr-builder-s390x-20260101_000000',
      disk_format: 'raw',
      container_format: 'bare',
      visibility: 'shared',
      min_disk: 4,
      architecture: 's390x',
      os_distro: 'fedora',
      farm_build_id: '20260101-000000-abcd',
      farm_image_name: 'copr-builder-s390x-20260101_000000',
      hw_firmware_type: 'uefi',
      team: 'copr',
    });
  });

  it('defaults disk_format to image_type and lets it differ', () => {
    const t = openstackTargetSchema.parse({ kind: 'openstack' });
    expect(imageFields({ target: t, artifact: artifact('qcow2'), imageName: 'n', tags: {}, virtualSize: 1 })).toMatchObject({
      disk_format: 'qcow2',
      visibility: 'private',
      min_disk: 1,
    });
  });
});

describe('propertyProblems', () => {
  it('rejects Glance attributes, reserved names and what farm sets', () => {
    expect(propertyProblems({ hw_disk_bus: 'scsi' })).toEqual([]);
    expect(propertyProblems({ min_ram: '512', os_glance_import_task: 'x', architecture: 'x86_64' })).toEqual([
      '"min_ram" is a Glance image attribute, not a property',
      '"os_glance_import_task" is reserved by Glance (os_glance*)',
      '"architecture" is set by farm from the build',
    ]);
  });
});

describe('diskFor', () => {
  it("takes the artifact's disk when its format is the target's", () => {
    const a = artifact('qcow2');
    expect(diskFor({ image_type: 'qcow2' }, a, 'openstack')).toBe(a.disk);
  });

  it('leaves conversion to the caller, with a clear error', () => {
    try {
      diskFor({ image_type: 'raw' }, artifact('qcow2'), 'uni-cloud');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(FarmError);
      expect((e as FarmError).message).toBe('uni-cloud takes raw images but qcow2/disk.qcow2 is qcow2');
      expect((e as FarmError).hint).toContain('convert the qcow2 to raw');
    }
  });
});

describe('virtualSize', () => {
  it("reads a qcow2's virtual size from its header and a raw's from its size", async () => {
    const a = artifact('qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', a.disk.path, '3G']);
    expect(await virtualSize(a.disk)).toBe(3 * 1024 ** 3);
    expect(await virtualSize({ ...artifact('raw').disk, size: 12345 })).toBe(12345);
  });

  it('refuses a file that is not qcow2', async () => {
    const a = artifact('qcow2');
    const path = join(dir, 'not.qcow2');
    writeFileSync(path, Buffer.alloc(64));
    await expect(virtualSize({ ...a.disk, path })).rejects.toThrow('is not a qcow2 image');
  });
});
