// The image lifecycle with the real CLI on the lab: a build publishes candidates carrying their
// identity on every target; `farm images --remote` finds them from the targets alone; `farm
// rollback` leaves nothing of the build on any target, counted in each service directly.
// Each run uses its own naming.name, which is its farm:inventory: the shared lab's other images
// are never listed, let alone touched.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { DescribeImageAttributeCommand, DescribeImagesCommand, DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { farm } from '../support/cli.ts';
import { ensureLab, labEnv, labInventoryVariant } from '../support/lab.ts';
import { labAzureAccount, sdkClients } from '../support/azure.ts';
import { listBlobs, type BlobAccount } from '../fakes/azure/blob-probe.ts';
import { LAB_AZURE } from '../fakes/azure/lab.ts';
import { poolVolumes } from '../support/libvirt.ts';
import type { Manifest } from '../../src/records/manifest.ts';
import type { RemoteImage } from '../../uploaders/lifecycle.ts';

const run = promisify(execFile);
const LAB_ARM = 'https://127.0.0.1:19011';

let env: Record<string, string>;
let account: BlobAccount;
let azure: ReturnType<typeof sdkClients>;

function ec2(region: string): EC2Client {
  return new EC2Client({ region, credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! }, endpoint: env.AWS_ENDPOINT_URL_EC2 });
}

async function openstack(args: string[]): Promise<string> {
  const { stdout } = await run('openstack', ['--os-cloud', 'lab', ...args], { env: { ...process.env, ...env }, maxBuffer: 16 << 20 });
  return stdout;
}

/** What each service holds of a build, asked of the service itself (not through the farm). */
async function counts(buildId: string, names: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const byTag = [{ Name: 'tag:farm:build-id', Values: [buildId] }];
  for (const region of ['us-east-1', 'us-west-2']) {
    out[`aws ${region} AMIs`] = ((await ec2(region).send(new DescribeImagesCommand({ Owners: ['self'], Filters: byTag }))).Images ?? []).length;
    out[`aws ${region} snapshots`] = ((await ec2(region).send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: byTag }))).Snapshots ?? []).length;
  }
  out['glance images'] = (JSON.parse(await openstack(['image', 'list', '-f', 'json', '--property', `farm_build_id=${buildId}`])) as unknown[]).length;
  for (const arch of ['x86_64', 'ppc64le'] as const) {
    out[`libvirt ${arch} volumes`] = (await poolVolumes(arch)).filter((v) => names.some((n) => v === n || v.startsWith(`${n}.`))).length;
  }
  let images = 0;
  for await (const img of azure.compute.images.listByResourceGroup(LAB_AZURE.resourceGroup)) if (img.tags?.['farm:build-id'] === buildId) images++;
  for await (const v of azure.compute.galleryImageVersions.listByGalleryImage(LAB_AZURE.resourceGroup, 'farm_lab_gallery', 'farm-lab-arm64')) {
    if (v.tags?.['farm:build-id'] === buildId) images++;
  }
  out['azure images'] = images;
  out['azure blobs'] = (await listBlobs(account, LAB_AZURE.container)).filter((b) => names.some((n) => b.startsWith(n))).length;
  return out;
}

beforeAll(async () => {
  await ensureLab();
  env = await labEnv();
  account = await labAzureAccount(env);
  azure = sdkClients(env, account, LAB_ARM);
});

afterAll(() => azure?.close());

describe('candidates, remote listing and rollback', () => {
  const inventoryName = `lc${randomBytes(3).toString('hex')}`;
  let file: string;
  let manifest: Manifest;

  it('a build publishes candidates that carry their identity on every target', async () => {
    const variant = await labInventoryVariant((doc) => {
      doc.naming = { name: inventoryName };
      // One template for every target ({name} first): this run's names are its own on the shared lab.
      for (const cfg of Object.values(doc.arches) as Array<{ targets: Array<Record<string, unknown>> }>) for (const t of cfg.targets) delete t.naming;
      delete doc.arches.s390x; // IBM's lifecycle is not here yet
    });
    file = variant.file;
    const r = await farm(['build', '--arch', 'x86_64,aarch64,ppc64le', '--inventory', file, '--json', '--quiet'], { env });
    expect(r.code, r.stderr).toBe(0);
    manifest = JSON.parse(r.stdout) as Manifest;

    const listed = await farm(['images', '--remote', '--inventory', file, '--json'], { env });
    expect(listed.code, listed.stderr).toBe(0);
    const images = JSON.parse(listed.stdout) as RemoteImage[];
    const published = manifest.builds.filter((b) => b.target);
    expect(images.filter((i) => !i.leftover).length).toBe(published.length);
    for (const i of images) {
      expect(i).toMatchObject({ buildId: manifest.last_run_uuid, channel: 'candidate', current: false });
    }
    const where = (i: RemoteImage) => `${i.target} ${i.location} ${i.arch}`;
    expect(images.map(where).sort()).toEqual(
      [
        'aws-us-east-1 us-east-1 x86_64',
        'aws-us-east-1 us-west-2 x86_64',
        'aws-us-east-1 us-east-1 aarch64',
        'libvirt 10.231.0.21 x86_64',
        'libvirt 10.231.0.22 ppc64le',
        'openstack RegionOne ppc64le',
        'azure eastus x86_64',
        'azure eastus aarch64',
      ].sort(),
    );
    // A candidate AMI has no launch permissions beyond its owner (share_accounts apply at release).
    for (const i of images.filter((x) => x.kind === 'aws')) {
      const perms = await ec2(i.location).send(new DescribeImageAttributeCommand({ ImageId: i.imageId, Attribute: 'launchPermission' }));
      expect(perms.LaunchPermissions ?? []).toEqual([]);
    }
    const names = [...new Set(images.map((i) => i.imageName))];
    const before = await counts(manifest.last_run_uuid, names);
    expect(before['aws us-east-1 AMIs']).toBe(2);
    expect(before['aws us-west-2 AMIs']).toBe(1);
    expect(before['glance images']).toBe(1);
    expect(before['libvirt x86_64 volumes']).toBe(2); // the image and its metadata volume
    expect(before['azure images']).toBe(2);
  });

  it('rollback removes every object of the build, and a rerun finds nothing left', async () => {
    const r = await farm(['rollback', manifest.last_run_uuid, '--inventory', file, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const names = [...new Set(manifest.builds.filter((b) => b.target).map((b) => b.image_name))];
    const after = await counts(manifest.last_run_uuid, names);
    expect(after).toEqual(Object.fromEntries(Object.keys(after).map((k) => [k, 0])));
    console.log('rollback counts per target, after:', JSON.stringify(after));

    const again = await farm(['rollback', manifest.last_run_uuid, '--inventory', file], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/nothing of build/);
  });
});
