// The image lifecycle with the real CLI on the lab: a build publishes candidates carrying their
// identity on every target; `farm images --remote` finds them from the targets alone; `farm
// rollback` leaves nothing of the build on any target, counted in each service directly.
// Each run uses its own naming.name, which is its farm:inventory: the shared lab's other images
// are never listed, let alone touched.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeregisterImageCommand, DescribeImageAttributeCommand, DescribeImagesCommand, DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
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
const IBM = 'http://127.0.0.1:19002';
const COS = 'http://127.0.0.1:19003';

async function ibmToken(): Promise<string> {
  const r = await fetch(`${IBM}/identity/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'urn:ibm:params:oauth:grant-type:apikey', apikey: env.IBMCLOUD_API_KEY! }),
  });
  return ((await r.json()) as { access_token: string }).access_token;
}

/** VPC images in a region carrying the build's user tag (Global Tagging), asked of the IBM fake. */
async function ibmImagesOf(region: string, buildId: string): Promise<number> {
  const auth = { authorization: `Bearer ${await ibmToken()}` };
  const r = await fetch(`${IBM}/${region}/v1/images?version=2025-04-08&generation=2&limit=100`, { headers: auth });
  let n = 0;
  for (const img of ((await r.json()) as { images: Array<{ crn: string }> }).images) {
    const t = (await (await fetch(`${IBM}/v3/tags?attached_to=${encodeURIComponent(img.crn)}&tag_type=user`, { headers: auth })).json()) as { items: Array<{ name: string }> };
    if (t.items.some((i) => i.name === `farm-build-id:${buildId}`)) n++;
  }
  return n;
}

async function cosObjects(names: string[]): Promise<number> {
  const s3 = new S3Client({ region: 'us-east', endpoint: COS, forcePathStyle: true, credentials: { accessKeyId: env.COS_HMAC_ACCESS_KEY_ID!, secretAccessKey: env.COS_HMAC_SECRET_ACCESS_KEY! } });
  const r = await s3.send(new ListObjectsV2Command({ Bucket: 'farm-lab-cos' }));
  s3.destroy();
  return (r.Contents ?? []).filter((o) => names.some((n) => o.Key?.startsWith(n.replace(/[_.]/g, '-')))).length;
}

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
  for (const region of ['us-east', 'eu-de', 'jp-tok']) out[`ibm ${region} images`] = await ibmImagesOf(region, buildId);
  out['ibm COS objects'] = await cosObjects(names);
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
    });
    file = variant.file;
    const r = await farm(['build', '--arch', 'all', '--inventory', file, '--json', '--quiet'], { env });
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
        'ibmcloud us-east s390x',
        'ibmcloud eu-de s390x',
        'ibmcloud jp-tok s390x',
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
    expect(before['ibm jp-tok images']).toBe(1);
    console.log('before rollback, per target:', JSON.stringify(before));
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

/** An x86_64-only variant (aws, libvirt, azure) whose release hook writes what it is told to a file. */
async function releaseVariant(name: string, hookFile: string, builds?: string) {
  return labInventoryVariant((doc) => {
    doc.naming = { name };
    doc.arches = { x86_64: doc.arches.x86_64 };
    for (const t of doc.arches.x86_64.targets as Array<Record<string, unknown>>) delete t.naming;
    doc.release = { hook: { command: ['/bin/sh', '-c', `cat > ${hookFile}`] } };
    doc.retention = { keep: 1, unused_days: 30, delete_after_days: 30, max_deletions: 10 };
    if (builds) doc.settings.builds_dir = builds;
  });
}

describe('release, prune', () => {
  const name = `rl${randomBytes(3).toString('hex')}`;
  let file: string;
  let dir: string;
  let hookFile: string;
  const builds: string[] = [];
  const remote = async (f = file) => {
    const r = await farm(['images', '--remote', '--inventory', f, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as RemoteImage[];
  };

  it('release shares the candidates, moves the current mark and tells the hook', async () => {
    const v0 = await labInventoryVariant();
    hookFile = join(v0.dir, 'hook.json');
    const v = await releaseVariant(name, hookFile);
    file = v.file;
    dir = v.dir;
    for (let i = 0; i < 2; i++) {
      const r = await farm(['build', '--arch', 'x86_64', '--inventory', file, '--json', '--quiet'], { env });
      expect(r.code, r.stderr).toBe(0);
      builds.push((JSON.parse(r.stdout) as Manifest).last_run_uuid);
    }
    const [b1, b2] = builds as [string, string];
    const r1 = await farm(['release', b1, '--inventory', file, '--json'], { env });
    expect(r1.code, r1.stderr).toBe(0);
    const told = JSON.parse(await readFile(hookFile, 'utf8')) as { build: string; released: RemoteImage[] };
    expect(told.build).toBe(b1);
    expect(told.released.map((i) => `${i.target} ${i.location}`).sort()).toEqual(['aws-us-east-1 us-east-1', 'aws-us-east-1 us-west-2', 'azure eastus', 'libvirt 10.231.0.21']);
    for (const i of (await remote()).filter((x) => x.kind === 'aws' && x.buildId === b1)) {
      const perms = await ec2(i.location).send(new DescribeImageAttributeCommand({ ImageId: i.imageId, Attribute: 'launchPermission' }));
      expect(perms.LaunchPermissions).toEqual([{ UserId: '123456789012' }]); // the lab target's share_accounts
    }

    const r2 = await farm(['release', b2, '--inventory', file, '--json'], { env });
    expect(r2.code, r2.stderr).toBe(0);
    const after = await remote();
    const state = (b: string) => after.filter((i) => i.buildId === b).map((i) => `${i.channel} ${i.current}`);
    expect(new Set(state(b2))).toEqual(new Set(['released true']));
    expect(new Set(state(b1))).toEqual(new Set(['released false']));
    expect((JSON.parse(r2.stdout) as { unmarked: unknown[] }).unmarked.length).toBe(4);

    // Released and current images need --force to roll back.
    const refused = await farm(['rollback', b2, '--inventory', file], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/released or current/);
    expect((await remote()).filter((i) => i.buildId === b2).length).toBe(4);
  });

  it('prune deprecates, then deletes exactly the policy set; an empty builds/ plans the same; a rerun finishes a cut-short prune', async () => {
    const [b1, b2] = builds as [string, string];
    const day = 86_400_000;
    const plan = async (f: string, at: number, more: string[] = []) => {
      const r = await farm(['prune', '--inventory', f, '--json', '--at', new Date(at).toISOString(), ...more], { env });
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { plan: Array<{ image: RemoteImage; action: string }> };
    };
    const actions = (p: { plan: Array<{ image: RemoteImage; action: string }> }) => Object.fromEntries(p.plan.map((x) => [`${x.image.location} ${x.image.imageId}`, `${x.image.buildId} ${x.action}`]));

    // In 40 days: b1 (released, not current, unused) is deprecated; b2 is current.
    const soon = Date.now() + 40 * day;
    const dry = await plan(file, soon);
    expect(new Set(Object.values(actions(dry)))).toEqual(new Set([`${b1} deprecate`, `${b2} keep`]));
    // A second coordinator, same inventory, an empty builds/: the same plan, from the targets alone.
    const other = await releaseVariant(name, hookFile, join(dir, 'elsewhere', 'builds'));
    expect(actions(await plan(other.file, soon))).toEqual(actions(dry));

    await plan(file, soon, ['--yes']);
    const deprecated = (await remote()).filter((i) => i.buildId === b1);
    expect(deprecated.every((i) => i.deprecatedAt)).toBe(true);

    // 80 days on: b1 has been deprecated over 30 days and goes. Cut one removal short first, as a
    // killed prune would: the AMI is gone, its snapshot is left.
    const later = Date.now() + 80 * day;
    const due = await plan(file, later);
    expect(new Set(Object.values(actions(due)))).toEqual(new Set([`${b1} delete`, `${b2} keep`]));
    const ami = deprecated.find((i) => i.kind === 'aws' && i.location === 'us-west-2')!;
    await ec2('us-west-2').send(new DeregisterImageCommand({ ImageId: ami.imageId }));
    const done = await farm(['prune', '--inventory', file, '--yes', '--at', new Date(later).toISOString()], { env });
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toBe('');
    const left = await remote();
    expect(left.filter((i) => i.buildId === b1)).toEqual([]);
    expect(left.filter((i) => i.buildId === b2).length).toBe(4);
    const names = [...new Set(deprecated.map((i) => i.imageName))];
    const counts1 = await counts(b1, names);
    expect(Object.values(counts1).every((n) => n === 0), JSON.stringify(counts1)).toBe(true);

    // Clean up b2 (released and current: --force).
    const gone = await farm(['rollback', b2, '--inventory', file, '--force'], { env });
    expect(gone.code, gone.stderr).toBe(0);
  });
});
