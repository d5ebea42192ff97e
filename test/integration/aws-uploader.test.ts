// The AWS uploader end to end: the real SDK against the EC2/EBS fake and a real S3 server
// (s3rver), credentials through the SDK's default chain (environment variables).

import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteSnapshotCommand, DescribeImageAttributeCommand, DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Arch } from '../../src/core/arch.ts';
import { FarmError } from '../../src/core/errors.ts';
import { awsTargetSchema } from '../../uploaders/aws/schema.ts';
import { createAwsUploader, type AwsUploaderOptions } from '../../uploaders/aws/index.ts';
import type { UploadContext, UploadProgress } from '../../uploaders/uploader.ts';
import type { Artifact } from '../../src/core/artifact.ts';
import { startAwsFake, type AwsFake } from '../fakes/aws/server.ts';
import { s3ClientConfig, startS3, type S3Server } from '../support/s3.ts';
import { TestJournal, type JournalStep } from '../support/journal.ts';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, UploadPartCommand } from '@aws-sdk/client-s3';

const MIB = 1024 * 1024;
const SIZE = 64 * MIB;
// Block-aligned data extents (offset MiB, length MiB): 5 MiB of data in a 64 MiB sparse raw.
const EXTENTS: Array<[number, number]> = [
  [0, 1],
  [5, 1],
  [17.5, 0.5],
  [40, 1.5],
  [63, 1],
];
const DATA_BYTES = EXTENTS.reduce((n, [, len]) => n + len * MIB, 0);
const BUCKET = 'farm-images';

let s3: S3Server;
let fake: AwsFake;
let dir: string;
let rawPath: string;
let s3c: S3Client;
const savedEnv: Record<string, string | undefined> = {};

const FAST: AwsUploaderOptions = {
  wait: { minDelaySeconds: 0.05, maxDelaySeconds: 0.2, maxWaitSeconds: 30 },
  progressIntervalMs: 0,
};

function setEnv(name: string, value: string | undefined): void {
  if (!(name in savedEnv)) savedEnv[name] = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

beforeAll(async () => {
  setEnv('AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED', 'true');
  s3 = await startS3();
  // One key pair for both servers: the default chain gives the uploader one identity.
  fake = await startAwsFake({
    s3: s3ClientConfig(s3),
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    timing: { snapshotCompleteMs: 150, imageAvailableMs: 150, importPolls: 3 },
  });
  // The default credential chain, kept hermetic: environment only, no profiles, no instance
  // metadata service (never contact anything but loopback).
  setEnv('AWS_ACCESS_KEY_ID', s3.accessKeyId);
  setEnv('AWS_SECRET_ACCESS_KEY', s3.secretAccessKey);
  setEnv('AWS_SESSION_TOKEN', undefined);
  setEnv('AWS_PROFILE', undefined);
  setEnv('AWS_EC2_METADATA_DISABLED', 'true');
  setEnv('AWS_CONFIG_FILE', '/nonexistent/farm-aws-config');
  setEnv('AWS_SHARED_CREDENTIALS_FILE', '/nonexistent/farm-aws-credentials');
  setEnv('AWS_ENDPOINT_URL', undefined);

  s3c = new S3Client(s3ClientConfig(s3));
  await s3c.send(new CreateBucketCommand({ Bucket: BUCKET }));

  dir = await mkdtemp(join(tmpdir(), 'farm-aws-up-'));
  rawPath = join(dir, 'disk.raw');
  const fh = await open(rawPath, 'w');
  await fh.truncate(SIZE);
  for (const [off, len] of EXTENTS) {
    const data = randomBytes(len * MIB);
    data[0] = 1; // never an all-zero block by chance
    await fh.write(data, 0, data.length, off * MIB);
  }
  await fh.close();
});

afterAll(async () => {
  s3c?.destroy();
  await fake?.stop();
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

function artifact(arch: Arch, path = rawPath, size = SIZE): Artifact {
  return {
    buildId: 'b-20250101',
    arch,
    type: 'ami',
    imageName: 'unused',
    disk: { path, name: 'image/disk.raw', size, sha256: '', format: 'raw' },
    extra: [],
    worker: `lab-${arch}`,
    builtAt: new Date().toISOString(),
  };
}

function target(extra: Record<string, unknown> = {}) {
  return awsTargetSchema.parse({ kind: 'aws', region: 'us-east-1', endpoint: fake.endpoint, tags: { team: 'copr' }, ...extra });
}

function ctx(progress: UploadProgress[] = [], signal = AbortSignal.timeout(120_000)): UploadContext {
  return {
    signal,
    log: () => {},
    tags: { 'farm-build-id': 'b-20250101' },
    onProgress: (p) => progress.push(p),
  };
}

function ec2(region: string): EC2Client {
  return new EC2Client({ endpoint: fake.endpoint, region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
}

async function objectsInBucket(): Promise<string[]> {
  const out = await s3c.send(new ListObjectsV2Command({ Bucket: BUCKET }));
  return (out.Contents ?? []).map((o) => o.Key!);
}

/** Nothing the uploader made is left: no snapshots, no images, no objects. */
async function expectNothingLeft(): Promise<void> {
  expect(fake.snapshots().map((s) => `${s.id}:${s.state}`)).toEqual([]);
  expect(fake.images().map((i) => i.id)).toEqual([]);
  expect(await objectsInBucket()).toEqual([]);
}

afterEach(async () => {
  // Each test starts from an empty account.
  const up = createAwsUploader(target({ copy_regions: ['us-west-2'] }), FAST);
  for (const img of fake.images()) {
    await up.delete({ target: '', kind: 'aws', location: img.region, imageName: img.name, imageId: img.id, artifactId: '', existing: true }, AbortSignal.timeout(30_000));
  }
  const left = fake.snapshots();
  for (const s of left) {
    const c = ec2(s.region);
    await c.send(new DeleteSnapshotCommand({ SnapshotId: s.id }));
    c.destroy();
  }
});

describe('ebs-direct', () => {
  it('sends only the non-zero blocks of a sparse raw and registers an arm64 AMI for aarch64', async () => {
    const before = { ...fake.stats.putSnapshotBlock };
    const progress: UploadProgress[] = [];
    const up = createAwsUploader(target(), FAST);
    await up.preflight(AbortSignal.timeout(30_000));
    const images = await up.upload(artifact('aarch64'), 'farm-test-aarch64', ctx(progress));

    expect(images).toHaveLength(1);
    const [img] = images;
    expect(img!.location).toBe('us-east-1');
    expect(img!.artifactId).toBe(`us-east-1:${img!.imageId}`);
    expect(img!.existing).toBe(false);

    const received = fake.stats.putSnapshotBlock.bytesReceived - before.bytesReceived;
    const accepted = fake.stats.putSnapshotBlock.accepted - before.accepted;
    expect(accepted).toBe(DATA_BYTES / 524_288);
    expect(received).toBeLessThanOrEqual(1.05 * DATA_BYTES);

    const [snap] = fake.snapshots('us-east-1');
    expect(snap!.state).toBe('completed');
    expect(snap!.volumeSize).toBe(1);
    expect(snap!.tags.get('Name')).toBe('farm-test-aarch64');
    expect(snap!.tags.get('farm-build-id')).toBe('b-20250101');
    // the snapshot holds exactly the image's bytes
    const stored = await readFile(snap!.dataPath);
    const source = await readFile(rawPath);
    expect(stored.subarray(0, SIZE).equals(source)).toBe(true);

    const described = await ec2('us-east-1').send(new DescribeImagesCommand({ ImageIds: [img!.imageId] }));
    const ami = described.Images![0]!;
    expect(ami.Architecture).toBe('arm64');
    expect(ami.State).toBe('available');
    expect(ami.BootMode).toBe('uefi-preferred');
    expect(ami.EnaSupport).toBe(true);
    expect(ami.VirtualizationType).toBe('hvm');
    expect(ami.RootDeviceName).toBe('/dev/sda1');
    expect(ami.BlockDeviceMappings![0]!.Ebs).toMatchObject({ SnapshotId: snap!.id, VolumeType: 'gp3', DeleteOnTermination: true });
    const tags = Object.fromEntries(ami.Tags!.map((t) => [t.Key, t.Value]));
    expect(tags).toEqual({ 'farm-build-id': 'b-20250101', team: 'copr', Name: 'farm-test-aarch64' });

    const last = progress.at(-1)!;
    expect(last.done).toBe(SIZE);
    expect(last.total).toBe(SIZE);
    expect(last.sent).toBe(DATA_BYTES);
    expect(progress.some((p) => p.phase === 'upload' && p.done < SIZE)).toBe(true);
  });

  it('registers x86_64 for an x86_64 build, with IMDSv2 and the boot mode from the target', async () => {
    const up = createAwsUploader(target({ imds_v2: true, boot_mode: 'uefi' }), FAST);
    const [img] = await up.upload(artifact('x86_64'), 'farm-test-x86_64', ctx());
    const ami = (await ec2('us-east-1').send(new DescribeImagesCommand({ ImageIds: [img!.imageId] }))).Images![0]!;
    expect(ami.Architecture).toBe('x86_64');
    expect(ami.ImdsSupport).toBe('v2.0');
    expect(ami.BootMode).toBe('uefi');
  });

  it('retries throttled and unavailable block uploads and still completes', async () => {
    const before = { ...fake.stats.putSnapshotBlock };
    fake.inject({ action: 'PutSnapshotBlock', times: 4, code: 'ThrottlingException', status: 400, message: 'Rate exceeded' });
    fake.inject({ action: 'PutSnapshotBlock', times: 3, code: 'ServiceUnavailable', status: 503 });
    const up = createAwsUploader(target(), FAST);
    await up.upload(artifact('x86_64'), 'farm-test-throttled', ctx());
    const requests = fake.stats.putSnapshotBlock.requests - before.requests;
    const accepted = fake.stats.putSnapshotBlock.accepted - before.accepted;
    expect(accepted).toBe(DATA_BYTES / 524_288);
    expect(requests).toBe(accepted + 7);
    expect(fake.snapshots('us-east-1')[0]!.state).toBe('completed');
  });

  it('fails on a block the service refuses, counting it, and removes the snapshot', async () => {
    fake.inject({ action: 'PutSnapshotBlock', times: 1, code: 'ValidationException', status: 400, message: 'block refused' });
    const up = createAwsUploader(target(), FAST);
    const err = (await up.upload(artifact('x86_64'), 'farm-test-badblock', ctx()).catch((e: unknown) => e)) as FarmError;
    expect(err).toBeInstanceOf(FarmError);
    expect(err.message).toMatch(/EBS direct snapshot upload failed: 1 block\(s\) failed after retries \(first: block \d+: block refused\)/);
    await expectNothingLeft();
  });

  it('copies to another region, shares and deprecates in each, and find() sees them', async () => {
    const now = new Date();
    const up = createAwsUploader(target({ copy_regions: ['us-west-2'], share_accounts: ['111122223333'], deprecate_after_days: 30 }), {
      ...FAST,
      now: () => now,
    });
    const images = await up.upload(artifact('aarch64'), 'farm-test-copied', ctx());
    expect(images.map((i) => i.location)).toEqual(['us-east-1', 'us-west-2']);
    for (const img of images) {
      const c = ec2(img.location);
      const ami = (await c.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: ['farm-test-copied'] }] }))).Images!;
      expect(ami.map((a) => a.ImageId)).toEqual([img.imageId]);
      expect(ami[0]!.Architecture).toBe('arm64');
      expect(ami[0]!.State).toBe('available');
      const deprecation = new Date(ami[0]!.DeprecationTime!).getTime();
      expect(Math.abs(deprecation - (now.getTime() + 30 * 86_400_000))).toBeLessThanOrEqual(60_000);
      const perms = await c.send(new DescribeImageAttributeCommand({ ImageId: img.imageId, Attribute: 'launchPermission' }));
      expect(perms.LaunchPermissions).toEqual([{ UserId: '111122223333' }]);
      c.destroy();
    }
    const west = fake.images('us-west-2')[0]!;
    expect(west.tags.get('Name')).toBe('farm-test-copied');
    expect(fake.snapshots('us-west-2')).toHaveLength(1);

    const found = await up.find('farm-test-copied', artifact('aarch64'), AbortSignal.timeout(10_000));
    expect(found.map((f) => [f.location, f.imageId, f.existing])).toEqual(images.map((i) => [i.location, i.imageId, true]));
    expect(await up.find('farm-test-other', artifact('aarch64'), AbortSignal.timeout(10_000))).toEqual([]);

    // a second upload under the same name is refused before sending anything
    const sentBefore = fake.stats.putSnapshotBlock.requests;
    await expect(up.upload(artifact('aarch64'), 'farm-test-copied', ctx())).rejects.toThrow(/exists already/);
    expect(fake.stats.putSnapshotBlock.requests).toBe(sentBefore);

    for (const img of found) await up.delete(img, AbortSignal.timeout(10_000));
    expect(fake.images()).toEqual([]);
    expect(fake.snapshots()).toEqual([]);
  });

  it('removes the snapshot when RegisterImage fails, and names the step', async () => {
    fake.inject({ action: 'RegisterImage', times: 1, code: 'UnauthorizedOperation', status: 403, message: 'You are not authorized to perform this operation.' });
    const up = createAwsUploader(target(), FAST);
    const err = await up.upload(artifact('x86_64'), 'farm-test-fails', ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FarmError);
    expect((err as FarmError).code).toBe('UPLOAD');
    expect((err as FarmError).message).toMatch(/RegisterImage failed: You are not authorized/);
    await expectNothingLeft();
  });

  it('removes the image and its copy when the copy fails', async () => {
    fake.inject({ action: 'CopyImage', times: 1, code: 'InvalidParameterValue', status: 400, message: 'copy refused' });
    const up = createAwsUploader(target({ copy_regions: ['us-west-2'] }), FAST);
    await expect(up.upload(artifact('x86_64'), 'farm-test-copyfail', ctx())).rejects.toThrow(/CopyImage to us-west-2 failed: copy refused/);
    await expectNothingLeft();
  });

  it('stops when cancelled and removes the unfinished snapshot', async () => {
    const ac = new AbortController();
    const up = createAwsUploader(target(), { ...FAST, concurrency: 2 });
    const progress: UploadProgress[] = [];
    const c = ctx(progress, ac.signal);
    c.onProgress = (p) => {
      progress.push(p);
      if (p.sent > 0) ac.abort();
    };
    const err = await up.upload(artifact('x86_64'), 'farm-test-cancel', c).catch((e: unknown) => e);
    expect((err as FarmError).code).toBe('ABORTED');
    await expectNothingLeft();
  });
});

describe('s3-import', () => {
  it('uploads through S3, imports, registers, and deletes the object', async () => {
    const up = createAwsUploader(target({ method: 's3-import', bucket: BUCKET }), { ...FAST, s3Endpoint: s3.endpoint, partSize: 16 * MIB, queueSize: 4 });
    await up.preflight(AbortSignal.timeout(30_000));
    const progress: UploadProgress[] = [];
    const [img] = await up.upload(artifact('aarch64'), 'farm-test-import', ctx(progress));
    expect(await objectsInBucket()).toEqual([]);
    const [task] = fake.importTasks('us-east-1');
    expect(task!.status).toBe('completed');
    expect(task!.diskImageSize).toBe(SIZE);
    const snap = fake.snapshots('us-east-1').find((s) => s.id === task!.snapshotId)!;
    expect(snap.volumeSize).toBe(1);
    expect(snap.tags.get('Name')).toBe('farm-test-import');
    expect((await readFile(snap.dataPath)).subarray(0, SIZE).equals(await readFile(rawPath))).toBe(true);
    const ami = (await ec2('us-east-1').send(new DescribeImagesCommand({ ImageIds: [img!.imageId] }))).Images![0]!;
    expect(ami.Architecture).toBe('arm64');
    expect(ami.BlockDeviceMappings![0]!.Ebs!.SnapshotId).toBe(snap.id);
    expect(progress.some((p) => p.phase === 'upload' && p.sent > 0)).toBe(true);
  });

  it('removes the object and the imported snapshot when RegisterImage fails', async () => {
    fake.inject({ action: 'RegisterImage', times: 1, code: 'UnauthorizedOperation', status: 403, message: 'not allowed' });
    const up = createAwsUploader(target({ method: 's3-import', bucket: BUCKET }), { ...FAST, s3Endpoint: s3.endpoint });
    await expect(up.upload(artifact('x86_64'), 'farm-test-import-fails', ctx())).rejects.toThrow(/RegisterImage failed: not allowed/);
    await expectNothingLeft();
  });

  it('preflight fails for a bucket that does not exist, naming it', async () => {
    const up = createAwsUploader(target({ method: 's3-import', bucket: 'no-such-bucket' }), { ...FAST, s3Endpoint: s3.endpoint });
    await expect(up.preflight(AbortSignal.timeout(30_000))).rejects.toThrow(/HeadBucket no-such-bucket failed/);
  });
});

describe('a run killed half-way, then removeHalfMade with what its journal recorded', () => {
  /** Starts an upload that freezes (as if killed) at the journal step `at`; resolves there. */
  async function killedAt(up: ReturnType<typeof createAwsUploader>, name: string, arch: Arch, at: (s: JournalStep) => boolean) {
    const journal = new TestJournal(at);
    const c = { ...ctx(), journal, tags: { 'farm-build-id': 'b-20250101', 'farm-attempt': journal.attempt } };
    void up.upload(artifact(arch), name, c).catch(() => {});
    await journal.frozen;
    return journal;
  }

  it('ebs-direct: a snapshot started but never completed, whose id was never recorded, is found by its attempt tag and deleted', async () => {
    const up = createAwsUploader(target(), FAST);
    const journal = await killedAt(up, 'farm-test-killed-snap', 'x86_64', (s) => s.op === 'identify' && s.object.kind === 'ebs-snapshot');
    const pending = fake.snapshots('us-east-1');
    expect(pending.map((s) => s.state)).toEqual(['pending']);
    // The freeze came at recording the id: a killed run's file would not have it.
    const records = journal.records.map((r) => ({ ...r, id: undefined }));
    const results = await up.removeHalfMade!(records, AbortSignal.timeout(30_000));
    expect(results.map((r) => [r.object.kind, r.outcome, r.error])).toEqual([['ebs-snapshot', 'removed', undefined]]);
    await expectNothingLeft();
  });

  it('ebs-direct: an AMI pending in a copy region and the available original are removed with their snapshots', async () => {
    const up = createAwsUploader(target({ copy_regions: ['us-west-2'] }), FAST);
    const journal = await killedAt(up, 'farm-test-killed-copy', 'x86_64', (s) => s.op === 'identify' && s.object.kind === 'ami' && s.object.location === 'us-west-2');
    expect(fake.images().map((i) => i.region).sort()).toEqual(['us-east-1', 'us-west-2']);
    const results = await up.removeHalfMade!(journal.records, AbortSignal.timeout(30_000));
    expect(results.every((r) => r.outcome === 'removed' || r.outcome === 'gone')).toBe(true);
    await expectNothingLeft();
  });

  it('ebs-direct: an attempt whose AMIs are available everywhere is complete and stays for find()', async () => {
    const up = createAwsUploader(target(), FAST);
    const journal = new TestJournal();
    const [img] = await up.upload(artifact('x86_64'), 'farm-test-killed-late', { ...ctx(), journal, tags: { 'farm-attempt': journal.attempt } });
    const results = await up.removeHalfMade!(journal.records, AbortSignal.timeout(30_000));
    expect(results.map((r) => [r.object.kind, r.outcome])).toEqual([['ebs-snapshot', 'complete'], ['ami', 'complete']]);
    expect((await up.find('farm-test-killed-late', artifact('x86_64'), AbortSignal.timeout(30_000))).map((i) => i.imageId)).toEqual([img!.imageId]);
  });

  it('s3-import: an import task under way is cancelled and the staging object deleted', async () => {
    const up = createAwsUploader(target({ method: 's3-import', bucket: BUCKET }), { ...FAST, s3Endpoint: s3.endpoint });
    const journal = await killedAt(up, 'farm-test-killed-import', 'aarch64', (s) => s.op === 'identify' && s.object.kind === 'import-task');
    expect(await objectsInBucket()).toHaveLength(1);
    const results = await up.removeHalfMade!(journal.records, AbortSignal.timeout(30_000));
    expect(results.map((r) => [r.object.kind, r.outcome])).toEqual([['s3-object', 'removed'], ['import-task', 'removed']]);
    expect(fake.importTasks('us-east-1').filter((t) => t.status === 'active')).toEqual([]);
    await expectNothingLeft();
  });

  it('s3-import: a multipart upload in progress is aborted (found by its key)', async () => {
    const up = createAwsUploader(target({ method: 's3-import', bucket: BUCKET }), { ...FAST, s3Endpoint: s3.endpoint });
    const key = 'farm-import/farm-test-killed-mpu-0000.raw';
    const { UploadId } = await s3c.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
    await s3c.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 1, Body: Buffer.alloc(5 * MIB, 1) }));
    const listed = async () => (await s3c.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: key }))).Uploads ?? [];
    expect((await listed()).map((u) => u.UploadId)).toEqual([UploadId]);
    const record = { kind: 's3-multipart', location: BUCKET, name: key, attempt: 'a1' };
    expect(await up.removeHalfMade!([record], AbortSignal.timeout(30_000))).toEqual([{ object: record, outcome: 'removed' }]);
    expect(await listed()).toEqual([]);
    expect(await up.removeHalfMade!([record], AbortSignal.timeout(30_000))).toEqual([{ object: record, outcome: 'gone' }]);
  });
});

describe('preflight', () => {
  it('reports missing credentials without contacting anything else', async () => {
    const key = process.env.AWS_ACCESS_KEY_ID;
    const secret = process.env.AWS_SECRET_ACCESS_KEY;
    delete process.env.AWS_ACCESS_KEY_ID;
    delete process.env.AWS_SECRET_ACCESS_KEY;
    try {
      const up = createAwsUploader(target(), FAST);
      const err = await up.preflight(AbortSignal.timeout(30_000)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FarmError);
      expect((err as FarmError).message).toMatch(/no usable AWS credentials/);
      expect((err as FarmError).hint).toMatch(/AWS_PROFILE/);
    } finally {
      process.env.AWS_ACCESS_KEY_ID = key;
      process.env.AWS_SECRET_ACCESS_KEY = secret;
    }
  });

  it('refuses wrong credentials without printing them', async () => {
    const up = createAwsUploader(target(), { ...FAST, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: 'wrong-secret-value' }, maxAttempts: 1 });
    const err = (await up.preflight(AbortSignal.timeout(30_000)).catch((e: unknown) => e)) as FarmError;
    expect(err.message).toMatch(/DescribeImages in us-east-1 failed/);
    expect(err.hint).toMatch(/credentials/);
    expect(`${err.message} ${err.hint}`).not.toContain('wrong-secret-value');
  });
});
