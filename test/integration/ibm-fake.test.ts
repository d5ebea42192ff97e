// The IBM fake refuses what IBM Cloud refuses, spoken to through the real SDKs (ibm-cloud-sdk-core,
// platform-services) and plain HTTP where an SDK would not send the bad request.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { IamAuthenticator } from 'ibm-cloud-sdk-core';
import ResourceManagerV2 from '@ibm-cloud/platform-services/resource-manager/v2.js';
import { startS3, s3ClientConfig, type S3Server } from '../support/s3.ts';
import { startIbmFake, type IbmFake } from '../fakes/ibm/index.ts';
import { VpcClient, VPC_API_VERSION } from '../../uploaders/ibmcloud/vpc-client.ts';

const BUCKET = 'fake-checks';
let s3: S3Server;
let s3c: S3Client;
let fake: IbmFake;
let dir: string;
let auth: IamAuthenticator;

const vpc = (region: string) => new VpcClient({ serviceUrl: `${fake.url}/${region}/v1`, authenticator: auth });
const rejection = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    return err as { status?: number; message: string; result?: { errors?: { code: string; message: string }[]; trace?: string } };
  }
  throw new Error('expected a rejection');
};
async function token(): Promise<string> {
  const opts: { headers: Record<string, string> } = { headers: {} };
  await auth.authenticate(opts);
  return opts.headers.Authorization!;
}

beforeAll(async () => {
  s3 = await startS3();
  s3c = new S3Client(s3ClientConfig(s3));
  await s3c.send(new CreateBucketCommand({ Bucket: BUCKET }));
  fake = await startIbmFake({
    cos: { ...s3 },
    cosDoor: { upstream: s3.endpoint },
    resourceGroups: [{ name: 'Default', default: true }, { name: 'images' }],
    importPolls: 2,
  });
  auth = new IamAuthenticator({ apikey: fake.apiKey, url: fake.endpoints.iam });
  dir = await mkdtemp(join(tmpdir(), 'farm-ibm-fake-'));
  const raw = join(dir, 'disk.raw');
  await writeFile(raw, Buffer.alloc(2 * 1024 * 1024, 7));
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, join(dir, 'disk.qcow2')]);
  const qcow2 = await readFile(join(dir, 'disk.qcow2'));
  await s3c.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'good.qcow2', Body: qcow2 }));
  await s3c.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'amd64.qcow2', Body: qcow2, Metadata: { 'farm-arch': 'x86_64' } }));
  await s3c.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'junk.qcow2', Body: Buffer.from('not a qcow2 at all, just text') }));
});

afterAll(async () => {
  await fake?.stop();
  s3c?.destroy();
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('IAM', () => {
  it('issues a JWT whose exp/iat the SDK core reads, for a known API key', async () => {
    const header = await token();
    expect(header).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    const claims = JSON.parse(Buffer.from(header.split(' ')[1]!.split('.')[1]!, 'base64url').toString());
    expect(claims.exp - claims.iat).toBe(3600);
    expect(claims.account.bss).toBe(fake.accountId);
  });

  it('answers an unknown API key with 400 and IAM error BXNIM0415E', async () => {
    const bad = new IamAuthenticator({ apikey: 'not-a-key-the-fake-knows', url: fake.endpoints.iam });
    const err = await rejection(bad.authenticate({ headers: {} }));
    expect(err.status).toBe(400);
    expect(err.result).toMatchObject({ errorCode: 'BXNIM0415E', errorMessage: 'Provided API key could not be found.' });
  });

  it('refuses other grant types and form-less requests', async () => {
    const res = await fetch(`${fake.url}/identity/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', apikey: fake.apiKey }),
    });
    expect(res.status).toBe(400);
    expect((await res.json()).errorCode).toBe('BXNIM0102E');
    const json = await fetch(`${fake.url}/identity/token`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    expect(json.status).toBe(400);
  });
});

describe('Resource Manager', () => {
  it('lists resource groups by name for a bearer, and refuses without one', async () => {
    const rm = new ResourceManagerV2({ authenticator: auth, serviceUrl: fake.endpoints.resourceManager });
    const { result } = await rm.listResourceGroups({ name: 'images' });
    expect(result.resources.map((g) => g.name)).toEqual(['images']);
    expect(result.resources[0]!.id).toMatch(/^[0-9a-f]{32}$/);
    const anon = await fetch(`${fake.url}/v2/resource_groups?name=images`);
    expect(anon.status).toBe(401);
  });
});

describe('VPC', () => {
  const href = (key: string) => `cos://us-east/${BUCKET}/${key}`;
  const proto = (name: string, key = 'good.qcow2', os = 'red-9-s390x-byol') => ({
    name,
    file: { href: href(key) },
    operating_system: { name: os },
    resource_group: { id: fake.resourceGroups[1]!.id },
  });

  it('requires the version and generation query parameters', async () => {
    const authz = await token();
    const noVersion = await fetch(`${fake.url}/us-east/v1/images?generation=2`, { headers: { Authorization: authz } });
    expect(noVersion.status).toBe(400);
    const body = await noVersion.json();
    expect(body.errors[0]).toMatchObject({ code: 'missing_version', target: { name: 'version', type: 'parameter' } });
    expect(body.trace).toEqual(expect.any(String));
    const badVersion = await fetch(`${fake.url}/us-east/v1/images?version=2025-13-45&generation=2`, { headers: { Authorization: authz } });
    expect((await badVersion.json()).errors[0].code).toBe('invalid_version');
    const future = await fetch(`${fake.url}/us-east/v1/images?version=2999-01-01&generation=2`, { headers: { Authorization: authz } });
    expect((await future.json()).errors[0].code).toBe('invalid_version_range');
    const gen1 = await fetch(`${fake.url}/us-east/v1/images?version=${VPC_API_VERSION}&generation=1`, { headers: { Authorization: authz } });
    expect(gen1.status).toBe(400);
    const ok = await fetch(`${fake.url}/us-east/v1/images?version=${VPC_API_VERSION}&generation=2`, { headers: { Authorization: authz } });
    expect(ok.status).toBe(200);
  });

  it('answers a missing or expired token with 401 in VPC error shape', async () => {
    const anon = await fetch(`${fake.url}/us-east/v1/images?version=${VPC_API_VERSION}&generation=2`);
    expect(anon.status).toBe(401);
    expect((await anon.json()).errors[0].code).toBe('not_authorized');

    const own = new IamAuthenticator({ apikey: fake.apiKey, url: fake.endpoints.iam });
    const client = new VpcClient({ serviceUrl: `${fake.url}/us-east/v1`, authenticator: own });
    await client.findImages('anything');
    fake.expireTokens();
    const err = await rejection(client.findImages('anything'));
    expect(err.status).toBe(401);
    expect(err.result?.errors?.[0]?.message).toMatch(/expired/);
    auth = new IamAuthenticator({ apikey: fake.apiKey, url: fake.endpoints.iam });
  });

  it('imports from COS: pending, then available with the checksum of the object', async () => {
    const created = await vpc('us-east').createImage(proto('fake-good'));
    expect(created.id).toMatch(/^r014-[0-9a-f-]{36}$/);
    expect(created.status).toBe('pending');
    expect(created.status_reasons[0]!.code).toBe('image_request_in_progress');
    expect(created.resource_group.id).toBe(fake.resourceGroups[1]!.id);
    // The import really reads the object; wait for it before counting polls.
    await expect.poll(() => fake.images('us-east').find((i) => i.id === created.id)?.imported?.ok, { timeout: 5000 }).toBe(true);
    expect((await vpc('us-east').getImage(created.id)).status).toBe('pending');
    const available = await vpc('us-east').getImage(created.id);
    expect(available.status).toBe('available');
    const { createHash } = await import('node:crypto');
    const sha = createHash('sha256').update(await readFile(join(dir, 'disk.qcow2'))).digest('hex');
    expect(available.file?.checksums?.sha256).toBe(sha);
    expect(available.operating_system?.architecture).toBe('s390x');
    // The same name in another region is fine; names are unique per region only.
    const other = await vpc('eu-de').createImage(proto('fake-good'));
    expect(other.id).toMatch(/^r010-/);
  });

  it('refuses a duplicate name in a region', async () => {
    const err = await rejection(vpc('us-east').createImage(proto('fake-good')));
    expect(err.status).toBe(400);
    expect(err.result?.errors?.[0]).toMatchObject({ code: 'validation_unique_failed', message: 'Provided Name (fake-good) is not unique' });
  });

  it('refuses bad names, hrefs, operating systems, resource groups and unknown fields', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ ...proto('Bad_Name') }, 'validation_invalid_name', /lower-case/],
      [{ ...proto('ibm-mine') }, 'validation_invalid_name', /reserved/],
      [{ ...proto('x'.repeat(64)) }, 'validation_invalid_name', /./],
      [{ ...proto('no-file'), file: undefined }, 'missing_field', /file/],
      [{ ...proto('http-href'), file: { href: 'https://example.invalid/disk.qcow2' } }, 'bad_field', /cos:\/\//],
      [{ ...proto('raw-ext'), file: { href: href('disk.raw') } }, 'bad_field', /qcow2 or vhd/],
      [{ ...proto('bad-cos-region'), file: { href: `cos://mars-1/${BUCKET}/good.qcow2` } }, 'bad_field', /region/],
      [{ ...proto('unknown-os', 'good.qcow2', 'red-7-s390x-byol') }, 'bad_field', /Operating system not found/],
      [{ ...proto('no-os'), operating_system: undefined }, 'missing_field', /operating_system/],
      [{ ...proto('bad-rg'), resource_group: { id: '0'.repeat(32) } }, 'bad_field', /Resource group not found/],
      [{ ...proto('extra'), zone: 'us-east-1' }, 'bad_field', /Unknown property: zone/],
      [{ ...proto('missing-object', 'nothing-here.qcow2') }, 'bad_field', /not found in Cloud Object Storage/],
      [{ ...proto('arch-mismatch', 'amd64.qcow2') }, 'bad_field', /s390x, but the image file is x86_64/],
    ];
    for (const [body, code, message] of cases) {
      const err = await rejection(vpc('us-east').createImage(body as never));
      expect(err.status, JSON.stringify(body)).toBe(400);
      expect(err.result?.errors?.[0]?.code, JSON.stringify(body)).toBe(code);
      expect(err.result?.errors?.[0]?.message).toMatch(message);
    }
    expect(fake.images('us-east').map((i) => i.name)).toEqual(['fake-good']);
  });

  it('fails an import whose file is not qcow2, and an injected failure', async () => {
    const junk = await vpc('jp-tok').createImage(proto('fake-junk', 'junk.qcow2'));
    fake.failNextImport('jp-tok', { code: 'image_data_corrupted', message: 'injected' });
    const injected = await vpc('jp-tok').createImage(proto('fake-injected'));
    await expect.poll(() => fake.images('jp-tok').every((i) => i.imported !== undefined), { timeout: 5000 }).toBe(true);
    for (let i = 0; i < 2; i++) await vpc('jp-tok').getImage(junk.id);
    for (let i = 0; i < 2; i++) await vpc('jp-tok').getImage(injected.id);
    const j = await vpc('jp-tok').getImage(junk.id);
    expect(j.status).toBe('failed');
    expect(j.status_reasons[0]).toMatchObject({ code: 'image_data_corrupted', message: 'The image file is not in qcow2 format' });
    const k = await vpc('jp-tok').getImage(injected.id);
    expect(k.status).toBe('failed');
    expect(k.status_reasons[0]!.message).toBe('injected');
  });

  it('refuses to delete a pending image, then deletes: deleting, then gone', async () => {
    const img = await vpc('eu-gb').createImage(proto('fake-delete'));
    const busy = await rejection(vpc('eu-gb').deleteImage(img.id));
    expect(busy.status).toBe(409);
    await expect.poll(async () => (await vpc('eu-gb').getImage(img.id)).status, { timeout: 5000 }).toBe('available');
    await vpc('eu-gb').deleteImage(img.id);
    expect((await vpc('eu-gb').getImage(img.id)).status).toBe('deleting');
    const again = await rejection(vpc('eu-gb').deleteImage(img.id));
    expect(again.status).toBe(409);
    const gone = await rejection(vpc('eu-gb').getImage(img.id));
    expect(gone.status).toBe(404);
    expect(await vpc('eu-gb').findImages('fake-delete')).toEqual([]);
  });

  it('knows operating systems by name, per region', async () => {
    const os = await vpc('us-east').getOperatingSystem('ibm-redhat-9-4-minimal-s390x-byol');
    expect(os).toMatchObject({ name: 'ibm-redhat-9-4-minimal-s390x-byol', architecture: 's390x' });
    expect((await vpc('us-east').getOperatingSystem('ibm-ubuntu-22-04-minimal-amd64')).architecture).toBe('amd64');
    const err = await rejection(vpc('us-east').getOperatingSystem('windows-3-11-x86'));
    expect(err.status).toBe(404);
    const region = await fetch(`${fake.url}/xx-nowhere/v1/images?version=${VPC_API_VERSION}&generation=2`);
    expect(region.status).toBe(404);
  });

  it('injects 429/5xx answers, which the SDK core retries', async () => {
    fake.injectFault({ status: 503, count: 2, method: 'GET', path: /\/images$/ });
    const before = fake.requests.length;
    const images = await vpc('us-east').findImages('fake-good');
    expect(images.map((i) => i.name)).toEqual(['fake-good']);
    expect(fake.requests.slice(before).map((r) => r.status)).toEqual([503, 503, 200]);
  });
});

describe('COS front door', () => {
  const get = (key: string, headers: Record<string, string> = {}) => fetch(`${fake.cosUrl}/${BUCKET}/${key}`, { headers });

  it('serves an object to a bearer token the fake IAM issued, and to HMAC keys the S3 server behind it knows', async () => {
    const viaToken = await get('junk.qcow2', { Authorization: await token() });
    expect(viaToken.status).toBe(200);
    expect(await viaToken.text()).toBe('not a qcow2 at all, just text');
    const hmac = new S3Client({ ...s3ClientConfig(s3), endpoint: fake.cosUrl! });
    const { HeadObjectCommand } = await import('@aws-sdk/client-s3');
    expect((await hmac.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'junk.qcow2' }))).ContentLength).toBe(29);
    // s3rver checks the access key (it does not recompute V4 signatures).
    const forged = new S3Client({ ...s3ClientConfig(s3), endpoint: fake.cosUrl!, credentials: { accessKeyId: 'AKIAUNKNOWNKEY000000', secretAccessKey: 'x' } });
    await expect(forged.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'junk.qcow2' }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 } });
    hmac.destroy();
    forged.destroy();
  });

  it('refuses anonymous requests and tokens it did not issue, with S3 AccessDenied', async () => {
    const anonymous = await get('junk.qcow2');
    expect(anonymous.status).toBe(403);
    expect(await anonymous.text()).toContain('<Code>AccessDenied</Code>');
    const good = await token();
    const forged = `${good.slice(0, -4)}AAAA`;
    const refused = await get('junk.qcow2', { Authorization: forged });
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain('The provided token is invalid');
    expect(fake.cosRequests.slice(-2).map((r) => [r.auth, r.status])).toEqual([['none', 403], ['bearer', 403]]);
  });
});
