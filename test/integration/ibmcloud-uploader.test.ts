// The IBM Cloud VPC uploader through the real SDKs (ibm-cloud-sdk-core, platform-services, AWS SDK
// S3 + lib-storage) against the strict IBM fake and a real S3 server (s3rver) standing in for COS.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { CreateBucketCommand, CreateMultipartUploadCommand, DeleteObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { startS3, s3ClientConfig, type S3Server } from '../support/s3.ts';
import { startIbmFake, type IbmFake } from '../fakes/ibm/index.ts';
import { createIbmCloudUploader, type IbmCloudUploaderOptions } from '../../uploaders/ibmcloud/index.ts';
import { FarmError } from '../../src/core/errors.ts';
import type { IbmCloudTarget } from '../../uploaders/ibmcloud/schema.ts';
import type { Artifact } from '../../src/core/artifact.ts';
import type { UploadContext, UploadProgress } from '../../uploaders/uploader.ts';
import { rejection } from '../support/assert.ts';
import { TestJournal } from '../support/journal.ts';

const BUCKET = 'farm-staging';
const REGIONS = ['us-east', 'eu-de', 'jp-tok'];
const FAST = { intervalMs: 10, factor: 1.5, maxIntervalMs: 40, timeoutMs: 15_000 };

let s3: S3Server;
let s3c: S3Client;
let fake: IbmFake;
let dir: string;
let qcow2: Artifact['disk'];

function target(over: Partial<IbmCloudTarget> = {}): IbmCloudTarget {
  return {
    kind: 'ibmcloud',
    name: 'ibm-s390x',
    regions: REGIONS,
    resource_group: 'farm-images',
    operating_system: 'red-9-s390x-byol',
    cos: { bucket: BUCKET, region: 'us-east', endpoint: s3.endpoint },
    endpoints: { iam: fake.endpoints.iam, vpc: fake.endpoints.vpc, resource_manager: fake.endpoints.resourceManager },
    ...over,
  };
}

function env(over: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { IBMCLOUD_API_KEY: fake.apiKey, COS_HMAC_ACCESS_KEY_ID: s3.accessKeyId, COS_HMAC_SECRET_ACCESS_KEY: s3.secretAccessKey, ...over };
}

function uploader(t = target(), opts: IbmCloudUploaderOptions = {}) {
  return createIbmCloudUploader(t, { env: env(), importPoll: FAST, deletePoll: FAST, ...opts });
}

function artifact(over: Partial<Artifact> = {}): Artifact {
  return {
    buildId: '20260101t120000z',
    arch: 's390x',
    type: 'qcow2',
    imageName: 'farm-20260101-120000-s390x',
    disk: qcow2,
    extra: [],
    worker: 'lab-s390x',
    builtAt: '2026-01-01T12:30:00Z',
    ...over,
  };
}

function context(signal = new AbortController().signal) {
  const logs: string[] = [];
  const progress: UploadProgress[] = [];
  const ctx: UploadContext = {
    signal,
    log: (m) => logs.push(m),
    onProgress: (p) => progress.push(p),
    tags: { 'farm-build-id': '20260101t120000z', 'farm-image-name': 'x' },
  };
  return { ctx, logs, progress };
}

async function objects(): Promise<string[]> {
  const out = await s3c.send(new ListObjectsV2Command({ Bucket: BUCKET }));
  return (out.Contents ?? []).map((o) => o.Key!);
}

const posts = (name?: string) => fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/v1/images') && (name === undefined || r.status === 201));

beforeAll(async () => {
  s3 = await startS3();
  s3c = new S3Client(s3ClientConfig(s3));
  await s3c.send(new CreateBucketCommand({ Bucket: BUCKET }));
  fake = await startIbmFake({
    cos: { ...s3 },
    cosDoor: { upstream: s3.endpoint },
    resourceGroups: [{ name: 'Default', default: true }, { name: 'farm-images' }],
    importPolls: 2,
  });
  dir = await mkdtemp(join(tmpdir(), 'farm-ibm-'));
  // A small raw disk with data at both ends and a hole between, converted to qcow2 by qemu-img.
  const raw = join(dir, 'disk.raw');
  execFileSync('qemu-img', ['create', '-f', 'raw', raw, '64M']);
  const fh = await import('node:fs/promises').then((m) => m.open(raw, 'r+'));
  // 12 MiB of incompressible data: three 5 MiB parts in the multipart upload test.
  await fh.write(randomBytes(12 * 1024 * 1024), 0, 12 * 1024 * 1024, 0);
  await fh.write(randomBytes(1024 * 1024), 0, 1024 * 1024, 60 * 1024 * 1024);
  await fh.close();
  const path = join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, path]);
  const bytes = await readFile(path);
  qcow2 = {
    path,
    name: 'qcow2/disk.qcow2',
    size: (await stat(path)).size,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    format: 'qcow2',
  };
});

afterAll(async () => {
  await fake?.stop();
  s3c?.destroy();
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('IBM Cloud uploader', () => {
  it('passes preflight with a good API key, resource group, bucket and OS name', async () => {
    await uploader().preflight(new AbortController().signal);
  });

  it('uploads an s390x qcow2 to three regions: available images with the OS and resource group, staging object removed', async () => {
    const name = 'farm-20260101-120000-s390x';
    const { ctx, progress, logs } = context();
    const before = posts().length;
    const out = await uploader(target(), { cosPartSize: 5 * 1024 * 1024 }).upload(artifact(), name, ctx);

    expect(out.map((p) => p.location)).toEqual(REGIONS);
    expect(qcow2.size).toBeGreaterThan(10 * 1024 * 1024);
    const group = fake.resourceGroups.find((g) => g.name === 'farm-images')!;
    for (const p of out) {
      expect(p).toMatchObject({ target: 'ibm-s390x', kind: 'ibmcloud', imageName: name, existing: false });
      expect(p.artifactId).toBe(`${p.location}:${p.imageId}`);
      const [img] = fake.images(p.location);
      expect(img).toMatchObject({ id: p.imageId, name, status: 'available' });
      expect(img!.operating_system.name).toBe('red-9-s390x-byol');
      expect(img!.resource_group.id).toBe(group.id);
      expect(img!.file.href).toBe(`cos://us-east/${BUCKET}/${name}.qcow2`);
      // VPC read exactly the bytes of the artifact, reassembled from the multipart upload.
      expect(img!.file.sha256).toBe(qcow2.sha256);
      expect(img!.file.metadata).toMatchObject({ 'farm-arch': 's390x', 'farm-build-id': '20260101t120000z', 'farm-sha256': qcow2.sha256 });
    }
    expect(out[0]!.imageId).toMatch(/^r014-/);
    expect(posts().length - before).toBe(3);
    for (const r of fake.requests.filter((q) => q.path.includes('/v1/'))) {
      expect(r.query.generation).toBe('2');
      expect(r.query.version).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
    expect(await objects()).toEqual([]);
    // lib-storage reports each finished part: three 5 MiB parts, not one PUT.
    const sent = progress.filter((p) => p.phase === 'upload to COS').map((p) => p.sent);
    expect(sent.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...sent)).toBe(qcow2.size);
    expect(progress.every((p) => p.total === qcow2.size)).toBe(true);
    expect(logs.join('\n')).not.toContain(fake.apiKey);

    // A second run finds the images and creates nothing.
    const found = await uploader().find(name, artifact(), new AbortController().signal);
    expect(found.map((f) => [f.location, f.imageId, f.existing])).toEqual(out.map((o) => [o.location, o.imageId, true]));
    const again = await uploader().upload(artifact(), name, context().ctx);
    expect(again.map((a) => a.imageId)).toEqual(out.map((o) => o.imageId));
    expect(again.every((a) => a.existing)).toBe(true);
    expect(posts().length - before).toBe(3);
    for (const r of REGIONS) expect(fake.images(r).filter((i) => i.name === name)).toHaveLength(1);
    expect(await objects()).toEqual([]);

    // delete() removes each image for good.
    const u = uploader();
    for (const p of out) await u.delete(p, new AbortController().signal);
    for (const r of REGIONS) expect(fake.images(r).filter((i) => i.name === name)).toEqual([]);
    expect(await u.find(name, artifact(), new AbortController().signal)).toEqual([]);
  });

  it('reaches COS with the IAM API key when no HMAC keys are set (bearer tokens on its S3 API)', async () => {
    const name = 'farm-iam-cos-s390x';
    const iam = () =>
      createIbmCloudUploader(target({ regions: ['us-east'], cos: { bucket: BUCKET, region: 'us-east', endpoint: fake.cosUrl! } }), {
        env: { IBMCLOUD_API_KEY: fake.apiKey, AWS_ACCESS_KEY_ID: 'AKIAFORTHEAWSTARGET', AWS_SECRET_ACCESS_KEY: 'not-for-cos' },
        importPoll: FAST,
        deletePoll: FAST,
        cosPartSize: 5 * 1024 * 1024,
      });
    const seen = fake.cosRequests.length;
    const u = iam();
    await u.preflight(new AbortController().signal);
    const out = await u.upload(artifact(), name, context().ctx);
    expect(fake.images('us-east').find((i) => i.id === out[0]!.imageId)).toMatchObject({ status: 'available', file: { sha256: qcow2.sha256 } });
    const door = fake.cosRequests.slice(seen);
    // HEAD bucket, the multipart upload (create, three parts, complete) and the staging object's removal.
    expect(door.filter((r) => r.method === 'PUT').length).toBeGreaterThanOrEqual(3);
    expect(door.some((r) => r.method === 'DELETE')).toBe(true);
    expect(door.every((r) => r.auth === 'bearer' && r.status < 300)).toBe(true);
    expect(await objects()).toEqual([]);
    await iam().delete(out[0]!, new AbortController().signal);

    // A token COS no longer takes (the uploader still holds it): the preflight says so, and what to do.
    fake.expireTokens();
    const err = await rejection(u.preflight(new AbortController().signal));
    expect(err.message).toMatch(/reach COS bucket 'farm-staging' failed: .*HTTP 403/);
    expect(err.message).toContain('COS refused the IAM token: give the API key Writer on the bucket');
  });

  it('imports only into regions that lack the image on a re-run', async () => {
    const name = 'farm-partial-s390x';
    const first = await uploader(target({ regions: ['us-east'] })).upload(artifact(), name, context().ctx);
    // Not complete in the three regions: find() reports nothing, so the upload stage calls upload().
    expect(await uploader().find(name, artifact(), new AbortController().signal)).toEqual([]);
    const before = posts().length;
    const out = await uploader().upload(artifact(), name, context().ctx);
    expect(out.map((o) => [o.location, o.existing])).toEqual([
      ['us-east', true],
      ['eu-de', false],
      ['jp-tok', false],
    ]);
    expect(out[0]!.imageId).toBe(first[0]!.imageId);
    expect(posts().length - before).toBe(2);
    for (const p of out) await uploader().delete(p, new AbortController().signal);
  });

  it('maps the farm name of an x86_64 image to a VPC name and checks the OS architecture', async () => {
    const amd = uploader(target({ operating_system: 'red-9-amd64-byol', regions: ['us-east'] }));
    const out = await amd.upload(artifact({ arch: 'x86_64' }), 'farm-20260101-120000-x86_64', context().ctx);
    expect(out[0]!.imageName).toBe('farm-20260101-120000-x86-64');
    expect(fake.images('us-east').find((i) => i.id === out[0]!.imageId)?.operating_system.architecture).toBe('amd64');
    await amd.delete(out[0]!, new AbortController().signal);

    const before = posts().length;
    const err = await rejection(uploader().upload(artifact({ arch: 'x86_64' }), 'farm-wrong-arch', context().ctx));
    expect(err.message).toMatch(/red-9-s390x-byol is for s390x, but the artifact is x86_64/);
    expect(err.hint).toMatch(/amd64/);
    expect(posts().length).toBe(before);
    expect(await objects()).toEqual([]);
  });

  it('refuses a raw disk and a ppc64le artifact before touching anything', async () => {
    const raw = await rejection(uploader().upload(artifact({ disk: { ...qcow2, format: 'raw', name: 'image/disk.raw' } }), 'farm-raw', context().ctx));
    expect(raw.message).toMatch(/imports qcow2 images, but image\/disk.raw is raw/);
    const ppc = await rejection(uploader().upload(artifact({ arch: 'ppc64le' }), 'farm-ppc', context().ctx));
    expect(ppc.message).toMatch(/no ppc64le/);
    expect(await objects()).toEqual([]);
  });

  it('reports a bad API key clearly, without the key', async () => {
    const key = `bad-${randomBytes(24).toString('hex')}`;
    const u = createIbmCloudUploader(target(), { env: env({ IBMCLOUD_API_KEY: key }), importPoll: FAST, deletePoll: FAST });
    const err = await rejection(u.preflight(new AbortController().signal));
    expect(err.code).toBe('UPLOAD');
    expect(err.message).toMatch(/get an IAM token failed: Provided API key could not be found\. \[HTTP 400 BXNIM0415E\]/);
    expect(err.hint).toMatch(/IBMCLOUD_API_KEY/);
    const up = await rejection(u.upload(artifact(), 'farm-badkey', context().ctx));
    for (const e of [err, up]) {
      expect(inspect(e, { depth: 10 })).not.toContain(key);
      expect(`${e.message} ${e.hint}`).not.toContain(key);
    }
    expect(await objects()).toEqual([]);
  });

  it('names every missing credential at once', async () => {
    const u = createIbmCloudUploader(target(), { env: { COS_HMAC_ACCESS_KEY_ID: 'only-half' } });
    const err = await rejection(u.preflight(new AbortController().signal));
    expect(err.message).toMatch(/IBMCLOUD_API_KEY is not set/);
    expect(err.message).toMatch(/COS_HMAC_SECRET_ACCESS_KEY is not set/);
    expect(err.message).not.toContain('only-half');
  });

  it('refuses an unknown operating system, a missing resource group and bucket at preflight', async () => {
    const err = await rejection(
      uploader(target({ operating_system: 'red-7-s390x-byol', resource_group: 'no-such-group', cos: { bucket: 'no-such-bucket', region: 'us-east', endpoint: s3.endpoint } })).preflight(
        new AbortController().signal,
      ),
    );
    expect(err.message).toMatch(/operating system 'red-7-s390x-byol' is not known to VPC in us-east, eu-de, jp-tok/);
    expect(err.message).toMatch(/resource group 'no-such-group' not found.*Default, farm-images/);
    expect(err.message).toMatch(/reach COS bucket 'no-such-bucket' failed: not found \[HTTP 404 NotFound\]/);
  });

  it('surfaces the VPC error when the COS object is missing, and leaves nothing behind', async () => {
    fake.setBeforeImport(async ({ bucket, key }) => {
      await s3c.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    });
    try {
      const err = await rejection(uploader().upload(artifact(), 'farm-missing-object', context().ctx));
      expect(err.code).toBe('UPLOAD');
      expect(err.message).toMatch(/IBM Cloud (us-east|eu-de|jp-tok): create image failed: The file at cos:\/\/us-east\/farm-staging\/farm-missing-object\.qcow2 was not found in Cloud Object Storage/);
      expect(err.hint).toMatch(/authorize "VPC Infrastructure Services"/);
    } finally {
      fake.setBeforeImport(undefined);
    }
    for (const r of REGIONS) expect(fake.images(r).filter((i) => i.name === 'farm-missing-object')).toEqual([]);
    expect(await objects()).toEqual([]);
  });

  it('removes the images of other regions and the object when the import fails in the 2nd region', async () => {
    const name = 'farm-fails-in-eu-de';
    fake.failNextImport('eu-de', { code: 'image_data_corrupted', message: 'image data is corrupt, or is not in the specified format' });
    const before = posts().length;
    const err = await rejection(uploader().upload(artifact(), name, context().ctx));
    expect(err.code).toBe('UPLOAD');
    expect(err.message).toMatch(/^IBM Cloud eu-de: import of image farm-fails-in-eu-de \(r010-[0-9a-f-]+\) ended failed: image_data_corrupted/);
    expect(err.message).toMatch(/created images and the staging object were removed/);
    expect(err.hint).toMatch(/qemu-img check/);
    // Images were created in all three regions, and none is left, not even one being deleted.
    expect(posts().length - before).toBe(3);
    for (const r of REGIONS) expect(fake.images(r).filter((i) => i.name === name)).toEqual([]);
    await expect(s3c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${name}.qcow2` }))).rejects.toMatchObject({ name: 'NotFound' });
  });

  it('honours the AbortSignal during the import and cleans up', async () => {
    const name = 'farm-cancelled';
    const controller = new AbortController();
    const { ctx } = context(controller.signal);
    const slow = uploader(target(), { importPoll: { intervalMs: 200, timeoutMs: 15_000 } });
    const logs: string[] = [];
    ctx.log = (m) => {
      logs.push(m);
      if (m.includes('importing')) controller.abort();
    };
    const err = await rejection(slow.upload(artifact(), name, ctx));
    expect(err.code).toBe('ABORTED');
    for (const r of REGIONS) expect(fake.images(r).filter((i) => i.name === name)).toEqual([]);
    expect(await objects()).toEqual([]);
  });

  it('retries 429 and 5xx through the SDK core, and creates once', async () => {
    const name = 'farm-retried';
    fake.injectFault({ status: 503, count: 1, method: 'GET', path: /\/us-east\/v1\/images$/ });
    fake.injectFault({ status: 429, count: 1, method: 'POST', path: /\/eu-de\/v1\/images$/ });
    const out = await uploader().upload(artifact(), name, context().ctx);
    expect(out).toHaveLength(3);
    for (const r of REGIONS) expect(fake.images(r).filter((i) => i.name === name)).toHaveLength(1);
    const euPosts = fake.requests.filter((q) => q.method === 'POST' && q.path === '/eu-de/v1/images' && q.query.version);
    expect(euPosts.slice(-2).map((q) => q.status)).toEqual([429, 201]);
    for (const p of out) await uploader().delete(p, new AbortController().signal);
  });

  it('does not retry a failed POST /images that may have created the image', async () => {
    fake.injectFault({ status: 500, count: 1, method: 'POST', path: /\/jp-tok\/v1\/images$/ });
    const err = await rejection(uploader().upload(artifact(), 'farm-post-500', context().ctx));
    expect(err.message).toMatch(/IBM Cloud jp-tok: create image failed: Internal error \(injected\) \[HTTP 500 internal_error\]/);
    for (const r of REGIONS) expect(fake.images(r).filter((i) => i.name === 'farm-post-500')).toEqual([]);
    expect(await objects()).toEqual([]);
  });
});

describe('a run killed half-way, then removeHalfMade with what its journal recorded', () => {
  const multiparts = async () => (await s3c.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads ?? [];

  it('removes the staging object of a run killed before its imports, and a COS multipart upload in progress', async () => {
    const name = 'farm-killed-cos';
    const { ctx } = context();
    const up = uploader(target(), { cosPartSize: 5 * 1024 * 1024 });
    const frozen = new TestJournal((st) => st.op === 'begin' && st.object.kind === 'vpc-image');
    void up.upload(artifact(), name, { ...ctx, journal: frozen, tags: { ...ctx.tags, 'farm-attempt': frozen.attempt } }).catch(() => {});
    await frozen.frozen;
    expect(await objects()).toEqual([`${name}.qcow2`]);
    // A multipart upload the same run would also have left, had it died a moment earlier.
    await s3c.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: `${name}.qcow2` }));
    expect((await multiparts()).map((u) => u.Key)).toEqual([`${name}.qcow2`]);
    const records = [...frozen.records, { kind: 'cos-multipart', location: BUCKET, name: `${name}.qcow2`, attempt: frozen.attempt }];
    const results = await up.removeHalfMade!(records, AbortSignal.timeout(30_000));
    expect(results.every((r) => r.outcome !== undefined)).toBe(true);
    expect(await objects()).toEqual([]);
    expect(await multiparts()).toEqual([]);
    for (const r of REGIONS) expect(fake.images(r).filter((i) => i.name === name)).toEqual([]);
  });

  it('deletes a pending import whose id was never recorded (found by name); an available one is complete', async () => {
    const name = 'farm-killed-vpc';
    const { ctx } = context();
    const up = uploader(target({ regions: ['eu-de'] }));
    // Frozen when the image's id is to be recorded: it exists, the journal has no id for it.
    const frozen = new TestJournal((st) => st.op === 'identify' && st.object.kind === 'vpc-image');
    void up.upload(artifact(), name, { ...ctx, journal: frozen, tags: { ...ctx.tags, 'farm-attempt': frozen.attempt } }).catch(() => {});
    await frozen.frozen;
    expect(fake.images('eu-de').filter((i) => i.name === name).map((i) => i.status)).toEqual(['pending']);
    const records = frozen.records.map((r) => ({ ...r, id: undefined }));
    const results = await up.removeHalfMade!(records, AbortSignal.timeout(30_000));
    expect(results.map((r) => [r.object.kind, r.outcome])).toEqual([['cos-object', 'removed'], ['vpc-image', 'removed']]);
    expect(fake.images('eu-de').filter((i) => i.name === name)).toEqual([]);
    expect(await objects()).toEqual([]);

    // A finished upload's records: its images are complete and stay.
    const done = new TestJournal();
    const out = await uploader().upload(artifact(), name, { ...context().ctx, journal: done });
    const again = await uploader().removeHalfMade!(done.records, AbortSignal.timeout(30_000));
    expect(again.map((r) => [r.object.location, r.outcome])).toEqual(REGIONS.map((r) => [r, 'complete']));
    for (const img of out) expect(fake.images(img.location).find((i) => i.id === img.imageId)?.status).toBe('available');
  });
});
