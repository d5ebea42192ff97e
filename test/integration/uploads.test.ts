// farm build --arch all with every target kind on the lab: AWS (EC2/EBS fake + S3), IBM Cloud
// (IAM/VPC fake + COS on S3), libvirt (real libvirtd over qemu+ssh), OpenStack (real Keystone +
// Glance). Each image is checked in its service, not in farm's records: arch, size and the
// Containerfile's marker read back from the Glance and libvirt copies.

import { execFile } from 'node:child_process';
import { readFile, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DescribeImagesCommand, DescribeSnapshotsCommand, EC2Client, type Image } from '@aws-sdk/client-ec2';
import { beforeAll, describe, expect, it } from 'vitest';
import { farm } from '../support/cli.ts';
import { ensureLab, labEnv, labInventoryVariant, markedSource } from '../support/lab.ts';
import { readFromDisk } from '../support/disk.ts';
import type { Manifest, ManifestBuild } from '../../src/records/manifest.ts';
import type { BuildState } from '../../src/records/state.ts';

const run = promisify(execFile);
const IBM = 'http://127.0.0.1:19002';
const VPC_VERSION = '2025-04-08';

let env: Record<string, string>;

function ec2(region: string): EC2Client {
  return new EC2Client({ region, credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! }, endpoint: env.AWS_ENDPOINT_URL_EC2 });
}

async function amis(region: string, name: string): Promise<Image[]> {
  const r = await ec2(region).send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [name] }] }));
  return r.Images ?? [];
}

async function snapshotsOfBuild(region: string, buildId: string): Promise<number> {
  const r = await ec2(region).send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: 'tag:farm-build-id', Values: [buildId] }] }));
  return (r.Snapshots ?? []).length;
}

async function ibmImages(region: string, name: string): Promise<Array<{ id: string; status: string; operating_system: { name: string } }>> {
  const tok = (await (
    await fetch(`${IBM}/identity/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'urn:ibm:params:oauth:grant-type:apikey', apikey: env.IBMCLOUD_API_KEY! }),
    })
  ).json()) as { access_token: string };
  const r = await fetch(`${IBM}/${region}/v1/images?name=${encodeURIComponent(name)}&version=${VPC_VERSION}&generation=2`, {
    headers: { authorization: `Bearer ${tok.access_token}` },
  });
  return ((await r.json()) as { images: Array<{ id: string; status: string; operating_system: { name: string } }> }).images;
}

async function openstack(args: string[]): Promise<string> {
  const { stdout } = await run('openstack', ['--os-cloud', 'lab', ...args], { env: { ...process.env, ...env }, maxBuffer: 16 << 20 });
  return stdout;
}

function uploads(m: Manifest, target: string, arch: string): ManifestBuild[] {
  return m.builds.filter((b) => b.target === target && b.arch === arch);
}

beforeAll(async () => {
  await ensureLab();
  env = await labEnv();
});

describe('farm build publishes to every target kind', () => {
  let manifest: Manifest;
  let buildDir: string;
  let token: string;
  let variantFile: string;

  it('builds all arches and publishes each where its targets say', async () => {
    const base = await labInventoryVariant();
    const src = await markedSource(base.dir);
    token = src.token;
    const variant = await labInventoryVariant((doc) => {
      doc.source.containerfile = src.containerfile;
      doc.source.context = src.context;
    });
    variantFile = variant.file;
    const r = await farm(['build', '--arch', 'all', '--inventory', variant.file, '--json', '--quiet'], { env });
    expect(r.code, r.stderr).toBe(0);
    manifest = JSON.parse(r.stdout) as Manifest;
    buildDir = join(variant.dir, 'builds', manifest.last_run_uuid);

    // AWS: registered with the build's arch (arm64 for aarch64), copied, tagged, sized from the disk.
    const [x86] = uploads(manifest, 'aws-us-east-1', 'x86_64').filter((b) => b.location === 'us-east-1');
    const [arm] = uploads(manifest, 'aws-us-east-1', 'aarch64');
    expect(x86!.artifact_id).toMatch(/^us-east-1:ami-[0-9a-f]+$/);
    expect(uploads(manifest, 'aws-us-east-1', 'x86_64').map((b) => b.location).sort()).toEqual(['us-east-1', 'us-west-2']);
    const x86Ami = (await amis('us-east-1', x86!.image_name))[0]!;
    expect(x86Ami.Architecture).toBe('x86_64');
    expect(x86Ami.ImdsSupport).toBe('v2.0');
    expect(x86Ami.BlockDeviceMappings?.[0]?.Ebs?.VolumeSize).toBe(1);
    expect(x86Ami.Tags).toEqual(expect.arrayContaining([{ Key: 'farm-build-id', Value: manifest.last_run_uuid }, { Key: 'project', Value: 'farm-lab' }]));
    expect((await amis('us-west-2', x86!.image_name)).length).toBe(1);
    // Snapshots carry the build's tags (the failure test below relies on finding them this way).
    expect(await snapshotsOfBuild('us-east-1', manifest.last_run_uuid)).toBeGreaterThan(0);
    const armAmi = (await amis('us-east-1', arm!.image_name))[0]!;
    expect(armAmi.Architecture).toBe('arm64');
    expect(arm!.image_name).toMatch(/^copr-builder-image-bootc-\d{8}-\d{6}-aarch64$/);

    // libvirt: a raw volume on each arch's own hypervisor, holding the build's files.
    for (const arch of ['x86_64', 'ppc64le']) {
      const [vol] = uploads(manifest, 'libvirt', arch);
      expect(vol!.image_name).toMatch(new RegExp(`^copr-builder-${arch}-\\d{8}_\\d{6}$`));
      expect(vol!.location).toBe(arch === 'x86_64' ? '10.231.0.21' : '10.231.0.22');
      const volPath = vol!.custom_data.image_id!;
      expect(volPath).toContain(`hv-${arch}/pool/images/`);
      expect((await readFromDisk(volPath, 'raw', '/usr/share/farm/marker')).trim()).toBe(token);
    }

    // OpenStack: active in Glance with the arch property; the downloaded copy holds the marker.
    const [glance] = uploads(manifest, 'openstack', 'ppc64le');
    const shown = JSON.parse(await openstack(['image', 'show', '-f', 'json', glance!.custom_data.image_id!])) as {
      status: string;
      disk_format: string;
      size: number;
      properties: Record<string, string>;
    };
    expect(shown.status).toBe('active');
    expect(shown.disk_format).toBe('raw');
    expect(shown.properties.architecture).toBe('ppc64le');
    const ppcRaw = manifest.builds.find((b) => b.name === 'ppc64le-raw')!;
    expect(shown.size).toBe(ppcRaw.files[0]!.size);
    const dl = join(await mkdtemp(join(tmpdir(), 'farm-glance-')), 'image.raw');
    await openstack(['image', 'save', '--file', dl, glance!.custom_data.image_id!]);
    expect((await readFromDisk(dl, 'raw', '/usr/share/farm/marker')).trim()).toBe(token);

    // IBM Cloud: available in all three regions with the s390x OS.
    const ibm = uploads(manifest, 'ibmcloud', 's390x');
    expect(ibm.map((b) => b.location).sort()).toEqual(['eu-de', 'jp-tok', 'us-east']);
    for (const b of ibm) {
      const imgs = await ibmImages(b.location!, b.image_name);
      expect(imgs.map((i) => [i.id, i.status, i.operating_system.name])).toEqual([[b.custom_data.image_id, 'available', 'red-9-s390x-byol']]);
    }
  });

  it('a second run creates no duplicates, even when the state lost its upload records', async () => {
    const again = await farm(['upload', manifest.last_run_uuid, '--inventory', variantFile, '--json'], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/already uploaded in this build/);

    // As if the coordinator crashed after uploading but before recording: the services are asked.
    const statePath = join(buildDir, 'state.json');
    const state = JSON.parse(await readFile(statePath, 'utf8')) as BuildState;
    for (const a of Object.values(state.arches)) if (a) a.uploads = {};
    await writeFile(statePath, JSON.stringify(state));
    const third = await farm(['upload', manifest.last_run_uuid, '--inventory', variantFile, '--json'], { env });
    expect(third.code, third.stderr).toBe(0);
    const m3 = JSON.parse(third.stdout) as Manifest;
    const ids = (m: Manifest) => m.builds.filter((b) => b.target).map((b) => b.artifact_id).sort();
    expect(ids(m3)).toEqual(ids(manifest));

    const x86Name = uploads(manifest, 'aws-us-east-1', 'x86_64')[0]!.image_name;
    expect((await amis('us-east-1', x86Name)).length).toBe(1);
    expect((await amis('us-west-2', x86Name)).length).toBe(1);
    const glanceName = uploads(manifest, 'openstack', 'ppc64le')[0]!.image_name;
    expect(JSON.parse(await openstack(['image', 'list', '-f', 'json', '--name', glanceName])).length).toBe(1);
    for (const b of uploads(manifest, 'ibmcloud', 's390x')) expect((await ibmImages(b.location!, b.image_name)).length).toBe(1);
  });

  it('an injected failure leaves nothing behind in the cloud and fails only that target', async () => {
    // The EC2 service refuses a deprecation time over 10 years away: the AMI is registered and
    // copied before that step fails, so the uploader must remove the image, copy and snapshots.
    const variant = await labInventoryVariant((doc) => {
      doc.arches = { x86_64: doc.arches.x86_64 };
      const aws = doc.arches.x86_64.targets.find((t: { kind: string }) => t.kind === 'aws');
      aws.deprecate_after_days = 4000;
      aws.naming = 'farm-fail-{date}-{time}-{arch}';
    });
    const r = await farm(['build', '--arch', 'x86_64', '--inventory', variant.file, '--json', '--quiet'], { env });
    expect(r.code).toBe(1);
    const m = JSON.parse(r.stdout) as Manifest;
    const state = JSON.parse(await readFile(join(variant.dir, 'builds', m.last_run_uuid, 'state.json'), 'utf8')) as BuildState;
    const aws = state.arches.x86_64!.uploads['aws-us-east-1']!;
    expect(aws.step).toBe('failed');
    expect(aws.error).toMatch(/deprecat/i);
    expect(state.arches.x86_64!.uploads.libvirt!.step).toBe('uploaded'); // the other target went on
    expect(state.status).toBe('partial');
    const name = `farm-fail-${m.last_run_uuid.slice(0, 8)}-${m.last_run_uuid.slice(9, 15)}-x86_64`;
    expect(await amis('us-east-1', name)).toEqual([]);
    expect(await amis('us-west-2', name)).toEqual([]);
    expect(await snapshotsOfBuild('us-east-1', m.last_run_uuid)).toBe(0);
    expect(await snapshotsOfBuild('us-west-2', m.last_run_uuid)).toBe(0);
  });
});
