// IBM Cloud Object Storage: the farm's COS upload (the ibmcloud uploader's staging step: its S3
// client for COS and its multipart upload) against `aws s3 cp` (Debian's awscli), both through
// the lab's COS door (HMAC keys, SigV4) to the same bucket. Neither is sparse: both send the whole
// file. The farm side gets a fresh client each turn, as each upload does. Each object is checked
// (full size) and deleted after its turn, untimed.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { DeleteObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { createCosClient, objectMetadata, partSizeFor, uploadFile } from '../../../uploaders/ibmcloud/cos.ts';
import type { BenchDisk } from '../../support/bench-disk.ts';
import { startupSeconds, type Contender } from '../../support/bench-pair.ts';
import { LAB_INVENTORY, labEnv } from '../../support/lab.ts';
import type { PeerSetup } from './peer.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;
// Debian's awscli, not a pip one that may be first on PATH (as aws.bench.ts).
const AWS_CLI = existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws';

/** The COS door, bucket and region of the lab inventory's ibmcloud target. */
async function labCos(): Promise<{ endpoint: string; bucket: string; region: string }> {
  const doc = parse(await readFile(LAB_INVENTORY, 'utf8')) as { arches: Record<string, { targets?: { kind: string; cos?: { endpoint: string; bucket: string; region: string } }[] }> };
  const cos = Object.values(doc.arches).flatMap((a) => a.targets ?? []).find((t) => t.kind === 'ibmcloud')?.cos;
  if (!cos?.endpoint) throw new Error(`${LAB_INVENTORY} has no ibmcloud target with a cos.endpoint`);
  return cos;
}

export async function cosPeer(disk: BenchDisk): Promise<PeerSetup> {
  // The SDK's notice about future Node versions says nothing about this run.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const lab = await labEnv();
  const { endpoint, bucket, region: COS_REGION } = await labCos();
  const hmac = { accessKeyId: lab.COS_HMAC_ACCESS_KEY_ID!, secretAccessKey: lab.COS_HMAC_SECRET_ACCESS_KEY! };
  const home = await mkdtemp(join(tmpdir(), 'farm-bench-aws-'));
  // Credentials from the environment only: no profile, config file or metadata lookups.
  const cliEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    AWS_ACCESS_KEY_ID: hmac.accessKeyId,
    AWS_SECRET_ACCESS_KEY: hmac.secretAccessKey,
    AWS_DEFAULT_REGION: COS_REGION,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: join(home, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'no-aws-credentials'),
  };
  const version = (await run(AWS_CLI, ['--version'], { env: cliEnv })).stdout.trim().split(' ')[0];
  const checker = createCosClient({ endpoint, region: COS_REGION, auth: { hmac } });
  const prefix = `farm-bench-${randomBytes(3).toString('hex')}`;
  const key = (who: string, turn: number) => `${prefix}-${who}-${turn}.raw`;
  const keys = new Map<number, string>();

  const checkAndDelete = async (turn: number) => {
    const Key = keys.get(turn)!;
    try {
      const head = await checker.send(new HeadObjectCommand({ Bucket: bucket, Key }));
      if (head.ContentLength !== disk.apparent) throw new Error(`object ${Key} has ${head.ContentLength} bytes, expected ${disk.apparent}`);
    } finally {
      await checker.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
    }
  };

  const farm: Contender = {
    label: `farm COS upload (lib-storage, ${partSizeFor(disk.apparent) / MiB} MiB parts x 4)`,
    before: async (turn) => void keys.set(turn, key('farm', turn)),
    async run(turn) {
      const client = createCosClient({ endpoint, region: COS_REGION, auth: { hmac } });
      try {
        const params = { bucket, key: keys.get(turn)!, file: disk.path, size: disk.apparent, metadata: objectMetadata({ 'farm-build-id': 'bench' }) };
        await uploadFile(client, params, AbortSignal.timeout(20 * 60_000), () => {});
      } finally {
        client.destroy();
      }
    },
    after: checkAndDelete,
  };
  const peer: Contender = {
    label: `aws s3 cp (${version}, 8 MiB parts x 10)`,
    before: async (turn) => void keys.set(turn, key('cli', turn)),
    async run(turn) {
      await run(AWS_CLI, ['s3', 'cp', '--only-show-errors', '--endpoint-url', endpoint, disk.path, `s3://${bucket}/${keys.get(turn)!}`], { env: cliEnv });
    },
    after: checkAndDelete,
  };
  return {
    bench: 'IBM COS upload',
    farm,
    peer,
    farmSends: disk.apparent,
    peerSends: disk.apparent,
    peerStartup: await startupSeconds(AWS_CLI, ['--version'], cliEnv),
    note: 'both multipart through the lab\'s COS door (HMAC) to its S3 server; peer start-up is `aws --version`',
    close: async () => {
      checker.destroy();
      await rm(home, { recursive: true, force: true });
    },
  };
}
