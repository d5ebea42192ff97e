// The EC2/EBS fake refuses what AWS refuses: driven here with the real SDK clients, no uploader.

import { createHash } from 'node:crypto';
import {
  CompleteSnapshotCommand,
  EBSClient,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
} from '@aws-sdk/client-ebs';
import {
  CopyImageCommand,
  DeleteSnapshotCommand,
  DescribeImportSnapshotTasksCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  ImportSnapshotCommand,
  RegisterImageCommand,
  type RegisterImageCommandInput,
} from '@aws-sdk/client-ec2';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAwsFake, type AwsFake } from '../fakes/aws/server.ts';
import { s3ClientConfig, startS3, type S3Server } from '../support/s3.ts';

const BLOCK = 524_288;
let fake: AwsFake;
let s3: S3Server;
let ebs: EBSClient;
let ec2: EC2Client;

function b64sha(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('base64');
}

async function rejection(p: Promise<unknown>): Promise<{ name: string; message: string; status?: number; Reason?: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { name: string; message: string; $metadata?: { httpStatusCode?: number }; Reason?: string };
    return { name: e.name, message: e.message, status: e.$metadata?.httpStatusCode, Reason: e.Reason };
  }
  throw new Error('expected the request to be rejected');
}

beforeAll(async () => {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  s3 = await startS3();
  fake = await startAwsFake({ s3: s3ClientConfig(s3), timing: { snapshotCompleteMs: 200, imageAvailableMs: 200, importPolls: 3 } });
  const cfg = { endpoint: fake.endpoint, region: 'us-east-1', credentials: fake.credentials, maxAttempts: 1 };
  ebs = new EBSClient(cfg);
  ec2 = new EC2Client(cfg);
});

afterAll(async () => {
  ebs?.destroy();
  ec2?.destroy();
  await fake?.stop();
  await s3?.stop();
});

async function start(size = 1): Promise<string> {
  const out = await ebs.send(new StartSnapshotCommand({ VolumeSize: size, Description: 'test' }));
  expect(out.Status).toBe('pending');
  expect(out.BlockSize).toBe(BLOCK);
  return out.SnapshotId!;
}

function put(snapshotId: string, index: number, data: Buffer, checksum = b64sha(data)) {
  return ebs.send(
    new PutSnapshotBlockCommand({ SnapshotId: snapshotId, BlockIndex: index, BlockData: data, DataLength: data.length, Checksum: checksum, ChecksumAlgorithm: 'SHA256' }),
  );
}

async function waitCompleted(id: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const out = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [id] }));
    if (out.Snapshots?.[0]?.State === 'completed') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${id} never completed`);
}

describe('EBS direct', () => {
  it('accepts a correct snapshot and moves it pending -> completed', async () => {
    const id = await start();
    const a = Buffer.alloc(BLOCK, 1);
    const b = Buffer.alloc(BLOCK, 2);
    await put(id, 7, b);
    await put(id, 2, a);
    const linear = createHash('sha256')
      .update(createHash('sha256').update(a).digest())
      .update(createHash('sha256').update(b).digest())
      .digest('base64');
    const done = await ebs.send(
      new CompleteSnapshotCommand({ SnapshotId: id, ChangedBlocksCount: 2, Checksum: linear, ChecksumAlgorithm: 'SHA256', ChecksumAggregationMethod: 'LINEAR' }),
    );
    expect(done.Status).toBe('pending');
    const right = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [id] }));
    expect(right.Snapshots?.[0]?.State).toBe('pending');
    await waitCompleted(id);
    const snap = fake.snapshots('us-east-1').find((s) => s.id === id)!;
    expect(snap.blockDigests.size).toBe(2);
    // a block on a completed snapshot is refused
    const late = await rejection(put(id, 3, a));
    expect(late.name).toBe('ValidationException');
  });

  it('rejects a block whose checksum does not match its data', async () => {
    const id = await start();
    const data = Buffer.alloc(BLOCK, 3);
    const err = await rejection(put(id, 0, data, b64sha(Buffer.alloc(BLOCK, 4))));
    expect(err.name).toBe('ValidationException');
    expect(err.message).toMatch(/checksum mismatch/i);
    expect(err.status).toBe(400);
  });

  it('rejects wrong sizes, indices outside the volume and unknown snapshots', async () => {
    const id = await start(1);
    const small = Buffer.alloc(4096, 1);
    expect((await rejection(put(id, 0, small))).message).toMatch(/DataLength must be 524288/);
    const block = Buffer.alloc(BLOCK, 1);
    const outside = await rejection(put(id, 2048, block)); // 1 GiB = blocks 0..2047
    expect(outside.name).toBe('ValidationException');
    expect(outside.Reason).toBe('INVALID_BLOCK');
    const unknown = await rejection(put('snap-0123456789abcdef0', 0, block));
    expect(unknown.name).toBe('ResourceNotFoundException');
    expect(unknown.status).toBe(404);
    const noSize = await rejection(ebs.send(new StartSnapshotCommand({ VolumeSize: 0 })));
    expect(noSize.Reason).toBe('INVALID_VOLUME_SIZE');
  });

  it('rejects CompleteSnapshot with a wrong aggregate checksum or block count', async () => {
    const id = await start();
    const a = Buffer.alloc(BLOCK, 9);
    await put(id, 0, a);
    const wrongCount = await rejection(ebs.send(new CompleteSnapshotCommand({ SnapshotId: id, ChangedBlocksCount: 2 })));
    expect(wrongCount.message).toMatch(/ChangedBlocksCount is 2 but 1 blocks/);
    // the hex digest instead of the raw digest: a classic mistake
    const wrongAggregate = createHash('sha256').update(createHash('sha256').update(a).digest('hex')).digest('base64');
    const bad = await rejection(
      ebs.send(
        new CompleteSnapshotCommand({ SnapshotId: id, ChangedBlocksCount: 1, Checksum: wrongAggregate, ChecksumAlgorithm: 'SHA256', ChecksumAggregationMethod: 'LINEAR' }),
      ),
    );
    expect(bad.name).toBe('ValidationException');
    expect(bad.message).toMatch(/aggregate/);
    // still pending: a corrected request goes through
    const right = createHash('sha256').update(createHash('sha256').update(a).digest()).digest('base64');
    await ebs.send(
      new CompleteSnapshotCommand({ SnapshotId: id, ChangedBlocksCount: 1, Checksum: right, ChecksumAlgorithm: 'SHA256', ChecksumAggregationMethod: 'LINEAR' }),
    );
  });

  it('answers the same snapshot for a repeated ClientToken, and a conflict if the request differs', async () => {
    const first = await ebs.send(new StartSnapshotCommand({ VolumeSize: 2, ClientToken: 'tok-1' }));
    const again = await ebs.send(new StartSnapshotCommand({ VolumeSize: 2, ClientToken: 'tok-1' }));
    expect(again.SnapshotId).toBe(first.SnapshotId);
    const conflict = await rejection(ebs.send(new StartSnapshotCommand({ VolumeSize: 3, ClientToken: 'tok-1' })));
    expect(conflict.name).toBe('ConflictException');
  });
});

describe('signatures', () => {
  it('refuses unsigned requests with the services\' error codes', async () => {
    const ec2Res = await fetch(`${fake.endpoint}/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=DescribeImages&Version=2016-11-15',
    });
    expect(ec2Res.status).toBe(403);
    expect(await ec2Res.text()).toMatch(/<Code>MissingAuthenticationToken<\/Code>/);
    const ebsRes = await fetch(`${fake.endpoint}/snapshots`, { method: 'POST', body: '{"VolumeSize":1}' });
    expect(ebsRes.status).toBe(403);
    expect(ebsRes.headers.get('x-amzn-errortype')).toBe('MissingAuthenticationTokenException');
  });

  it('refuses a wrong secret key', async () => {
    const bad = { accessKeyId: fake.credentials.accessKeyId, secretAccessKey: 'not-the-secret' };
    const badEc2 = new EC2Client({ endpoint: fake.endpoint, region: 'us-east-1', credentials: bad, maxAttempts: 1 });
    const badEbs = new EBSClient({ endpoint: fake.endpoint, region: 'us-east-1', credentials: bad, maxAttempts: 1 });
    try {
      expect((await rejection(badEc2.send(new DescribeSnapshotsCommand({})))).name).toBe('AuthFailure');
      expect((await rejection(badEbs.send(new StartSnapshotCommand({ VolumeSize: 1 })))).name).toBe('InvalidSignatureException');
    } finally {
      badEc2.destroy();
      badEbs.destroy();
    }
  });
});

describe('EC2', () => {
  const register = (input: Partial<RegisterImageCommandInput>, snapshotId: string) =>
    ec2.send(
      new RegisterImageCommand({
        Name: 'fake-test',
        Architecture: 'x86_64',
        RootDeviceName: '/dev/sda1',
        VirtualizationType: 'hvm',
        BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { SnapshotId: snapshotId } }],
        ...input,
      }),
    );

  it('validates RegisterImage like EC2', async () => {
    const pending = await start();
    expect((await rejection(register({}, pending))).name).toBe('IncorrectState');
    expect((await rejection(register({}, 'snap-0123456789abcdef0'))).name).toBe('InvalidSnapshot.NotFound');
    await ebs.send(new CompleteSnapshotCommand({ SnapshotId: pending, ChangedBlocksCount: 0 }));
    await waitCompleted(pending);
    expect((await rejection(register({ Architecture: 'sparc' as never }, pending))).name).toBe('InvalidParameterValue');
    expect((await rejection(register({ Architecture: undefined }, pending))).name).toBe('MissingParameter');
    expect((await rejection(register({ Name: undefined }, pending))).name).toBe('MissingParameter');
    expect((await rejection(register({ Name: 'x' }, pending))).name).toBe('InvalidAMIName.Malformed');
    expect((await rejection(register({ ImdsSupport: 'v1.0' as never }, pending))).name).toBe('InvalidParameterValue');
    expect((await rejection(register({ Architecture: 'arm64', BootMode: 'legacy-bios' }, pending))).name).toBe('InvalidParameterCombination');
    expect(
      (await rejection(register({ TagSpecifications: [{ ResourceType: 'snapshot', Tags: [{ Key: 'a', Value: 'b' }] }] }, pending))).name,
    ).toBe('InvalidParameterValue');
    expect(
      (await rejection(register({ TagSpecifications: [{ ResourceType: 'image', Tags: [{ Key: 'aws:x', Value: 'b' }] }] }, pending))).name,
    ).toBe('InvalidParameterValue');
    const ok = await register({}, pending);
    expect(ok.ImageId).toMatch(/^ami-[0-9a-f]{17}$/);
    const dup = await rejection(register({}, pending));
    expect(dup.name).toBe('InvalidAMIName.Duplicate');
    expect(dup.message).toContain(ok.ImageId!);
    // a snapshot behind an image cannot be deleted
    expect((await rejection(ec2.send(new DeleteSnapshotCommand({ SnapshotId: pending })))).name).toBe('InvalidSnapshot.InUse');
    // a pending image cannot be copied
    const west = new EC2Client({ endpoint: fake.endpoint, region: 'us-west-2', credentials: fake.credentials, maxAttempts: 1 });
    try {
      const copy = await rejection(west.send(new CopyImageCommand({ SourceRegion: 'us-east-1', SourceImageId: ok.ImageId!, Name: 'fake-test' })));
      expect(copy.name).toBe('IncorrectState');
    } finally {
      west.destroy();
    }
  });

  it('imports a RAW object from S3, sized from what it read', async () => {
    const s3c = new S3Client(s3ClientConfig(s3));
    try {
      await s3c.send(new CreateBucketCommand({ Bucket: 'fake-import' }));
      const body = Buffer.alloc(3 * 1024 * 1024, 7);
      await s3c.send(new PutObjectCommand({ Bucket: 'fake-import', Key: 'disk.raw', Body: body }));
      const task = await ec2.send(
        new ImportSnapshotCommand({ DiskContainer: { Format: 'RAW', UserBucket: { S3Bucket: 'fake-import', S3Key: 'disk.raw' } } }),
      );
      const id = task.ImportTaskId!;
      const seen: string[] = [];
      let snapshotId: string | undefined;
      for (let i = 0; i < 20 && !snapshotId; i++) {
        const out = await ec2.send(new DescribeImportSnapshotTasksCommand({ ImportTaskIds: [id] }));
        const d = out.ImportSnapshotTasks![0]!.SnapshotTaskDetail!;
        seen.push(d.Status!);
        if (d.Status === 'completed') {
          snapshotId = d.SnapshotId;
          expect(d.DiskImageSize).toBe(body.length);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(seen[0]).toBe('active');
      expect(seen.at(-1)).toBe('completed');
      const snap = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId!] }));
      expect(snap.Snapshots![0]!.VolumeSize).toBe(1);

      // a missing object ends the task `deleted` with a ClientError message
      const missing = await ec2.send(
        new ImportSnapshotCommand({ DiskContainer: { Format: 'RAW', UserBucket: { S3Bucket: 'fake-import', S3Key: 'nope.raw' } } }),
      );
      let last: { Status?: string; StatusMessage?: string } = {};
      for (let i = 0; i < 20 && last.Status !== 'deleted'; i++) {
        await new Promise((r) => setTimeout(r, 20));
        const out = await ec2.send(new DescribeImportSnapshotTasksCommand({ ImportTaskIds: [missing.ImportTaskId!] }));
        last = out.ImportSnapshotTasks![0]!.SnapshotTaskDetail!;
      }
      expect(last.Status).toBe('deleted');
      expect(last.StatusMessage).toMatch(/^ClientError/);
    } finally {
      s3c.destroy();
    }
  });
});
