// The azure kind end to end with the real CLI on the lab: bib's vhd (the lab's stand-in writes a
// fixed, whole-MiB VHD) goes to Azurite (the real Blob service) as a sparse page blob, then a
// managed image (x86_64) or a gallery image version (aarch64) is made by a strict fake of
// Resource Manager, through the real @azure/identity and @azure/arm-compute. The fake hashes the
// blob when it "copies" it, so the sparse upload is checked byte for byte.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/records/manifest.ts';
import type { BuildState } from '../../src/records/state.ts';
import { listBlobs, putPageBlob, type BlobAccount } from '../fakes/azure/blob-probe.ts';
import { LAB_AZURE } from '../fakes/azure/lab.ts';
import type { AzureFake } from '../fakes/azure/server.ts';
import { labAzureAccount, labAzureTarget, sdkClients, startTestArm } from '../support/azure.ts';
import { farm } from '../support/cli.ts';
import { ensureLab, labEnv, labInventoryVariant, markedSource } from '../support/lab.ts';

const MIB = 1024 * 1024;
let env: Record<string, string>;
let account: BlobAccount;
let fake: AzureFake;
let copied: Map<string, string>;
let farmEnv: Record<string, string>;

const sha256 = (path: string) =>
  new Promise<string>((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (c) => h.update(c)).on('end', () => resolve(h.digest('hex'))).on('error', reject);
  });

beforeAll(async () => {
  await ensureLab();
  env = await labEnv();
  account = await labAzureAccount(env);
  ({ fake, copied } = await startTestArm(env, account));
  // The farm finds its token issuer here, as DefaultAzureCredential would find Entra ID.
  farmEnv = { ...env, AZURE_AUTHORITY_HOST: fake.url };
});

afterAll(async () => {
  await fake?.stop();
});

const stagingLeft = async (imageName: string) => (await listBlobs(account, LAB_AZURE.container)).filter((b) => b.startsWith(`${imageName}.`));

describe('farm publishes to Azure', () => {
  let variantFile: string;
  let buildDir: string;
  let manifest: Manifest;

  it('uploads x86_64 as a managed image and aarch64 as a gallery version, sending only the data', async () => {
    const base = await labInventoryVariant();
    const src = await markedSource(base.dir);
    const variant = await labInventoryVariant((doc) => {
      doc.source.containerfile = src.containerfile;
      doc.source.context = src.context;
      doc.arches = {
        x86_64: { types: ['vhd'], targets: [labAzureTarget(env, fake.url, { naming: 'farm-az-{date}-{time}-{arch}', tags: { project: 'farm-lab' } })] },
        aarch64: { types: ['vhd'], targets: [labAzureTarget(env, fake.url, { naming: 'farm-az-{date}-{time}-{arch}', gallery: { name: LAB_AZURE.gallery, image: LAB_AZURE.galleryImages.aarch64 } })] },
      };
    });
    variantFile = variant.file;
    const r = await farm(['build', '--arch', 'x86_64,aarch64', '--inventory', variant.file, '--json'], { env: farmEnv });
    expect(r.code, r.stderr).toBe(0);
    manifest = JSON.parse(r.stdout) as Manifest;
    buildDir = join(variant.dir, 'builds', manifest.last_run_uuid);
    const state = JSON.parse(await readFile(join(buildDir, 'state.json'), 'utf8')) as BuildState;

    const x86 = manifest.builds.find((b) => b.target === 'azure' && b.arch === 'x86_64')!;
    const arm = manifest.builds.find((b) => b.target === 'azure' && b.arch === 'aarch64')!;
    const image = fake.resources().find((res) => res.type === 'Microsoft.Compute/images' && res.name === x86.image_name)!;
    expect(image.properties).toMatchObject({ provisioningState: 'Succeeded', hyperVGeneration: 'V2', storageProfile: { osDisk: { osType: 'Linux', osState: 'Generalized' } } });
    expect(image.tags).toMatchObject({ 'farm-image-name': x86.image_name, 'farm-build-id': manifest.last_run_uuid, 'farm-arch': 'x86_64', project: 'farm-lab' });
    expect(x86.artifact_id).toBe(`eastus:${image.id}`);
    const versions = fake.resources().filter((res) => res.type === 'Microsoft.Compute/galleries/images/versions' && res.tags['farm-image-name'] === arm.image_name);
    expect(versions.map((v) => [v.id.includes(`/images/${LAB_AZURE.galleryImages.aarch64}/versions/`), v.properties.provisioningState])).toEqual([[true, 'Succeeded']]);

    // What Azure copied is the VHD the build made, byte for byte, though only its data was sent.
    for (const arch of ['x86_64', 'aarch64'] as const) {
      const vhd = state.arches[arch]!.artifacts.find((a) => a.type === 'vhd')!.disk;
      expect(vhd.size % 512).toBe(0);
      expect((vhd.size - 512) % MIB).toBe(0);
      const source = [...copied.entries()].find(([uri]) => uri.includes(`/${arch === 'x86_64' ? x86.image_name : arm.image_name}.`));
      expect(source?.[1]).toBe(await sha256(vhd.path));
    }
    const sent = [...r.stderr.matchAll(/sending ([\d.]+) MiB of ([\d.]+) MiB in \d+ Put Page/g)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(sent).toHaveLength(2);
    for (const [data, total] of sent) expect(data!).toBeLessThan(total! / 4);
    // The staging blobs are gone.
    expect(await stagingLeft(x86.image_name)).toEqual([]);
    expect(await stagingLeft(arm.image_name)).toEqual([]);
  });

  it('a rerun makes nothing new, even when the state lost its upload records', async () => {
    const again = await farm(['upload', manifest.last_run_uuid, '--inventory', variantFile, '--json'], { env: farmEnv });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/already uploaded in this build/);

    const statePath = join(buildDir, 'state.json');
    const state = JSON.parse(await readFile(statePath, 'utf8')) as BuildState;
    for (const a of Object.values(state.arches)) if (a) a.uploads = {};
    await writeFile(statePath, JSON.stringify(state));
    const before = fake.resources().length;
    const third = await farm(['upload', manifest.last_run_uuid, '--inventory', variantFile, '--json'], { env: farmEnv });
    expect(third.code, third.stderr).toBe(0);
    expect(third.stderr).toMatch(/already exists/);
    const ids = (m: Manifest) => m.builds.filter((b) => b.target).map((b) => b.artifact_id).sort();
    expect(ids(JSON.parse(third.stdout) as Manifest)).toEqual(ids(manifest));
    expect(fake.resources().length).toBe(before);
    expect(fake.requests.filter((q) => q.method === 'PUT')).toHaveLength(2); // the first run's two creates only
  });

  it('a failed image removes the staging blob and the failed image, and only that target fails', async () => {
    const doc = (await import('yaml')).parse(await readFile(variantFile, 'utf8'));
    doc.arches.x86_64.targets = [labAzureTarget(env, fake.url, { name: 'azure-broken', naming: 'farm-az-broken-{date}-{time}-{arch}' })];
    doc.arches.aarch64.targets = [];
    const broken = join(buildDir, '..', '..', 'broken.yaml');
    await writeFile(broken, (await import('yaml')).stringify(doc));
    fake.failNextCreate({ code: 'InvalidVhd', message: 'The VHD could not be read (injected).' });
    const r = await farm(['upload', manifest.last_run_uuid, '--inventory', broken, '--json'], { env: farmEnv });
    expect(r.code).toBe(1);
    const state = JSON.parse(await readFile(join(buildDir, 'state.json'), 'utf8')) as BuildState;
    const up = state.arches.x86_64!.uploads['azure-broken']!;
    expect(up.step).toBe('failed');
    expect(up.error).toMatch(/InvalidVhd|could not be read/);
    expect(up.halfMade ?? []).toEqual([]);
    const name = `farm-az-broken-${manifest.last_run_uuid.slice(0, 8)}-${manifest.last_run_uuid.slice(9, 15)}-x86_64`;
    expect(fake.resources().filter((res) => res.name === name)).toEqual([]);
    expect(await stagingLeft(name)).toEqual([]);
    expect(r.stderr).toMatch(/removed the staging blob/);
  });
});

describe('the fake Resource Manager refuses what Azure refuses', () => {
  const rg = LAB_AZURE.resourceGroup;
  const image = (blobUri: string) => ({ location: 'eastus', hyperVGeneration: 'V2' as const, storageProfile: { osDisk: { osType: 'Linux' as const, osState: 'Generalized' as const, blobUri } } });
  const vhdFooter = (virtual: number, type = 2) => {
    const f = Buffer.alloc(512);
    f.write('conectix', 0, 'latin1');
    f.writeBigUInt64BE(BigInt(virtual), 48);
    f.writeUInt32BE(type, 60);
    return f;
  };
  it('a source blob that does not exist, a size that is not a whole MiB, a dynamic VHD, a taken name', async () => {
    const { compute, close } = sdkClients(env, account, fake.url);
    try {
      const tag = Date.now().toString(36);
      const missing = `${env.FARM_LAB_AZURE_BLOB_URL}/${LAB_AZURE.container}/nothing-${tag}.vhd`;
      await expect(compute.images.beginCreateOrUpdateAndWait(rg, `missing-${tag}`, image(missing))).rejects.toMatchObject({ statusCode: 400, code: 'InvalidParameter' });

      // A page blob whose virtual size is 1 MiB + 512: Azure wants whole MiB.
      const odd = await putFooted(`odd-${tag}.vhd`, MIB + 512, 2);
      await expect(compute.images.beginCreateOrUpdateAndWait(rg, `odd-${tag}`, image(odd))).rejects.toMatchObject({ statusCode: 400, code: 'InvalidVhd', message: expect.stringMatching(/whole number/) });
      const dynamic = await putFooted(`dyn-${tag}.vhd`, MIB, 3);
      await expect(compute.images.beginCreateOrUpdateAndWait(rg, `dyn-${tag}`, image(dynamic))).rejects.toMatchObject({ code: 'InvalidVhd', message: expect.stringMatching(/fixed/) });

      const good = await putFooted(`good-${tag}.vhd`, MIB, 2);
      const made = await compute.images.beginCreateOrUpdateAndWait(rg, `good-${tag}`, image(good), { updateIntervalInMs: 50 });
      expect(made.provisioningState).toBe('Succeeded');
      await expect(compute.images.beginCreateOrUpdateAndWait(rg, `good-${tag}`, image(good))).rejects.toMatchObject({ statusCode: 409 });
      await expect(compute.images.beginCreateOrUpdateAndWait(rg, `-bad-${tag}`, image(good))).rejects.toMatchObject({ code: 'InvalidResourceName' });
      await compute.images.beginDeleteAndWait(rg, `good-${tag}`, { updateIntervalInMs: 50 });
      await expect(compute.images.get(rg, `good-${tag}`)).rejects.toMatchObject({ statusCode: 404 });

      // A gallery version needs an int32 Major.Minor.Patch name and its storage account.
      const version = { location: 'eastus', storageProfile: { osDiskImage: { source: { uri: good, storageAccountId: `/subscriptions/${LAB_AZURE.subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Storage/storageAccounts/${LAB_AZURE.account}` } } } };
      await expect(compute.galleryImageVersions.beginCreateOrUpdateAndWait(rg, LAB_AZURE.gallery, LAB_AZURE.galleryImages.x86_64, '1.2', version)).rejects.toMatchObject({ statusCode: 400 });
      const noAccount = { ...version, storageProfile: { osDiskImage: { source: { uri: good } } } };
      await expect(compute.galleryImageVersions.beginCreateOrUpdateAndWait(rg, LAB_AZURE.gallery, LAB_AZURE.galleryImages.x86_64, '1.0.0', noAccount)).rejects.toMatchObject({ statusCode: 400 });
    } finally {
      close();
    }
  });

  it('a token for another audience, an expired one, and no api-version', async () => {
    const { credential, close } = sdkClients(env, account, fake.url);
    try {
      const storage = await credential.getToken('https://storage.azure.com/.default');
      const get = (token: string, q = '?api-version=2025-04-01') =>
        fetchWithCa(`${fake.url}/subscriptions/${LAB_AZURE.subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Compute/images${q}`, token);
      expect(await get(storage!.token)).toMatchObject({ status: 401, code: 'InvalidAuthenticationTokenAudience' });
      const armToken = await credential.getToken(`${fake.url}/.default`);
      expect(await get(armToken!.token)).toMatchObject({ status: 200 });
      expect(await get(armToken!.token, '')).toMatchObject({ status: 400, code: 'MissingApiVersionParameter' });
      fake.expireTokens();
      await new Promise((r) => setTimeout(r, 1100));
      expect(await get(armToken!.token)).toMatchObject({ status: 401, code: 'ExpiredAuthenticationToken' });
    } finally {
      close();
    }
  });

  async function putFooted(name: string, virtual: number, type: number): Promise<string> {
    const size = virtual + 512;
    const uri = await putPageBlob(account, LAB_AZURE.container, name, size, Buffer.alloc(0));
    await putPageAt(name, size - 512, vhdFooter(virtual, type));
    return uri;
  }

  async function putPageAt(name: string, offset: number, data: Buffer): Promise<void> {
    const { StorageSharedKeyCredential, BlobSASPermissions, generateBlobSASQueryParameters } = await import('@azure/storage-blob');
    const sas = generateBlobSASQueryParameters(
      { containerName: LAB_AZURE.container, blobName: name, permissions: BlobSASPermissions.parse('w'), expiresOn: new Date(Date.now() + 600_000) },
      new StorageSharedKeyCredential(account.name, account.key),
    ).toString();
    const { request } = await import('node:https');
    await new Promise<void>((resolve, reject) => {
      const req = request(
        `${account.url}/${LAB_AZURE.container}/${encodeURIComponent(name)}?comp=page&${sas}`,
        { method: 'PUT', ca: account.ca, headers: { 'x-ms-version': '2021-12-02', 'x-ms-page-write': 'update', 'x-ms-range': `bytes=${offset}-${offset + data.length - 1}`, 'content-length': String(data.length) } },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`put page: ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  }

  async function fetchWithCa(url: string, token: string): Promise<{ status: number; code?: string }> {
    const { request } = await import('node:https');
    return new Promise((resolve, reject) => {
      const req = request(url, { ca: account.ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(body || '{}') as { error?: { code?: string } }).error?.code }));
      });
      req.on('error', reject);
      req.end();
    });
  }
});
