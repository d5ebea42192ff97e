// The whole lab from one `scripts/lab up`: the env file it writes is all a client needs. Each
// service is asked through its real client (AWS SDK with its default credential chain, IBM's SDK
// core, openstack CLI, virsh over qemu+ssh with pinned host keys). A second lab-cloud process (its
// own ports and state) shows the cloud fakes' state surviving a restart.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListBucketsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeImportSnapshotTasksCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  ImportSnapshotCommand,
  RegisterImageCommand,
} from '@aws-sdk/client-ec2';
import { IamAuthenticator } from 'ibm-cloud-sdk-core';
import ResourceManagerV2 from '@ibm-cloud/platform-services/resource-manager/v2.js';
import { VpcClient, type VpcImage } from '../../uploaders/ibmcloud/vpc-client.ts';
import { ensureLab, LAB_DIR, LAB_SCRIPT } from '../support/lab.ts';
import { ensureHypervisors } from '../support/libvirt.ts';
import { REPO } from '../support/cli.ts';

const run = promisify(execFile);
const S3_URL = 'http://127.0.0.1:19000';
const AWS_URL = 'http://127.0.0.1:19001';
const IBM_URL = 'http://127.0.0.1:19002';
const ENV_VARS = [
  'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION', 'AWS_ENDPOINT_URL_S3', 'AWS_EC2_METADATA_DISABLED',
  'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED', 'IBMCLOUD_API_KEY', 'COS_HMAC_ACCESS_KEY_ID',
  'COS_HMAC_SECRET_ACCESS_KEY', 'OS_CLIENT_CONFIG_FILE',
] as const;
const RUN_ID = randomBytes(4).toString('hex');

let labEnv: Record<string, string>;
const saved = new Map<string, string | undefined>();

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeout = 120_000): Promise<Result> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** Polls `check` (bounded) until it returns a value. */
async function until<T>(what: string, check: () => Promise<T | undefined>, tries = 60, delayMs = 250): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await check();
    if (v !== undefined) return v;
    await sleep(delayMs);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const s3 = () =>
  new S3Client({ forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
const ibmAuth = () => new IamAuthenticator({ apikey: labEnv.IBMCLOUD_API_KEY!, url: IBM_URL });

beforeAll(async () => {
  await ensureLab();
  await ensureHypervisors();
  const { stdout } = await run(LAB_SCRIPT, ['env']);
  const envFile = stdout.trim();
  expect(envFile).toBe(join(LAB_DIR, 'env')); // the cloud part's exports and the registry's
  expect((await stat(envFile)).mode & 0o777).toBe(0o600);
  // Sourced by a shell with nothing else in its environment: what `. "$(scripts/lab env)"` gives.
  const out = await run('bash', ['-c', '. "$1" && env -0', 'bash', envFile], { env: { PATH: process.env.PATH } });
  labEnv = Object.fromEntries(
    out.stdout
      .split('\0')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  // The SDKs' default chains read the process environment: put the lab's in it for this file.
  for (const [k, v] of Object.entries(labEnv)) {
    if (k.startsWith('AWS_') || k.startsWith('COS_') || k.startsWith('IBMCLOUD_') || k.startsWith('OS_')) {
      saved.set(k, process.env[k]);
      process.env[k] = v;
    }
  }
  for (const k of ['AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_DEFAULT_REGION']) {
    saved.set(k, process.env[k]);
    delete process.env[k];
  }
});

afterAll(() => {
  for (const [k, v] of saved) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

describe('the env file', () => {
  it('exports every variable the farm and its tools read', () => {
    for (const k of ENV_VARS) expect(labEnv[k], k).toBeTruthy();
    expect(labEnv.AWS_REGION).toBe('us-east-1');
    expect(labEnv.AWS_DEFAULT_REGION).toBe('us-east-1'); // the AWS CLI's name for it
    expect(labEnv.AWS_ENDPOINT_URL_EC2).toBe(AWS_URL);
    expect(labEnv.AWS_ENDPOINT_URL_S3).toBe(S3_URL);
    expect(labEnv.AWS_EC2_METADATA_DISABLED).toBe('true');
    expect(labEnv.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED).toBe('true');
    expect(labEnv.OS_CLIENT_CONFIG_FILE).toBe(join(LAB_DIR, 'openstack', 'clouds.yaml'));
    // One identity for S3, EC2/EBS and COS.
    expect(labEnv.COS_HMAC_ACCESS_KEY_ID).toBe(labEnv.AWS_ACCESS_KEY_ID);
    expect(labEnv.COS_HMAC_SECRET_ACCESS_KEY).toBe(labEnv.AWS_SECRET_ACCESS_KEY);
    expect(labEnv.AWS_ACCESS_KEY_ID).toMatch(/^AKIA[A-Z2-7]{16}$/);
  });
});

describe('S3 (s3rver on 127.0.0.1:19000)', () => {
  it('lists both lab buckets to the default credential chain', async () => {
    const c = s3();
    try {
      const { Buckets } = await c.send(new ListBucketsCommand({}));
      expect(Buckets?.map((b) => b.Name)).toEqual(expect.arrayContaining(['farm-lab-imports', 'farm-lab-cos']));
    } finally {
      c.destroy();
    }
  });

  it('refuses a key that is not the lab key', async () => {
    const c = new S3Client({ endpoint: S3_URL, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    try {
      await expect(c.send(new ListBucketsCommand({}))).rejects.toMatchObject({ name: 'InvalidAccessKeyId' });
    } finally {
      c.destroy();
    }
  });
});

describe('AWS fake (EC2 + EBS on 127.0.0.1:19001)', () => {
  it.each(['us-east-1', 'us-west-2', 'eu-central-1'])('answers DescribeImages in %s', async (region) => {
    const ec2 = new EC2Client({ endpoint: AWS_URL, region });
    try {
      const out = await ec2.send(new DescribeImagesCommand({ Owners: ['self'] }));
      expect(Array.isArray(out.Images)).toBe(true);
      expect(out.$metadata.httpStatusCode).toBe(200);
    } finally {
      ec2.destroy();
    }
  });

  it('is where an EC2 client configured only by the environment goes', async () => {
    const ec2 = new EC2Client({});
    try {
      expect(await ec2.config.region()).toBe('us-east-1');
      const out = await ec2.send(new DescribeImagesCommand({ Owners: ['self'] }));
      expect(out.$metadata.httpStatusCode).toBe(200);
    } finally {
      ec2.destroy();
    }
  });

  it('refuses a wrong secret key', async () => {
    const ec2 = new EC2Client({
      endpoint: AWS_URL,
      region: 'us-east-1',
      credentials: { accessKeyId: labEnv.AWS_ACCESS_KEY_ID!, secretAccessKey: 'not-the-lab-secret' },
    });
    try {
      await expect(ec2.send(new DescribeImagesCommand({ Owners: ['self'] }))).rejects.toMatchObject({ name: 'AuthFailure' });
    } finally {
      ec2.destroy();
    }
  });
});

describe('IBM fake (IAM, Resource Manager, VPC on 127.0.0.1:19002)', () => {
  it('issues a token for the env API key and none for another', async () => {
    const opts: { headers: Record<string, string> } = { headers: {} };
    await ibmAuth().authenticate(opts);
    expect(opts.headers.Authorization).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    const wrong = new IamAuthenticator({ apikey: `${labEnv.IBMCLOUD_API_KEY}x`, url: IBM_URL });
    await expect(wrong.authenticate({ headers: {} })).rejects.toMatchObject({ status: 400 });
  });

  it('has the resource group farm-lab', async () => {
    const rm = new ResourceManagerV2({ authenticator: ibmAuth(), serviceUrl: IBM_URL });
    const { result } = await rm.listResourceGroups({ name: 'farm-lab' });
    expect(result.resources?.map((g) => g.name)).toEqual(['farm-lab']);
  });
});

describe('OpenStack (Keystone 127.0.0.1:15000, Glance 127.0.0.1:19292)', () => {
  it('lists images with openstack --os-cloud lab, configured by the env file', async () => {
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, OS_CLIENT_CONFIG_FILE: labEnv.OS_CLIENT_CONFIG_FILE };
    const r = await sh('openstack', ['--os-cloud', 'lab', 'image', 'list', '-f', 'json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(Array.isArray(JSON.parse(r.stdout))).toBe(true);
  });
});

describe('libvirt hypervisors (10.231.0.21, 10.231.0.22)', () => {
  it('each lists pool images over qemu+ssh with its host key verified', async () => {
    const hosts = await ensureHypervisors();
    expect(hosts.map((h) => h.arch).sort()).toEqual(['ppc64le', 'x86_64']);
    for (const h of hosts) {
      // libvirt's ssh transport ignores known_hosts=; the lab's wrapper pins the host keys.
      const uri = `${h.uri}?keyfile=${h.identityFile}&no_verify=0&no_tty=1&command=${join(LAB_DIR, 'hv-ssh')}`;
      const r = await sh('virsh', ['-q', '-c', uri, 'pool-list', '--all'], { ...process.env, LC_ALL: 'C' });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^\s*images\s+active\s/m);
    }
  });
});

describe('known_hosts', () => {
  it('pins every lab host once: the workers and the hypervisors keep each other\'s lines', async () => {
    const lines = (await readFile(join(LAB_DIR, 'ssh', 'known_hosts'), 'utf8')).split('\n').filter((l) => l.trim() !== '');
    const hosts: [string, string][] = [
      ['10.231.0.11', join(LAB_DIR, 'hosts', 'lab-x86_64', 'ssh_host_ed25519_key.pub')],
      ['10.231.0.12', join(LAB_DIR, 'hosts', 'lab-aarch64', 'ssh_host_ed25519_key.pub')],
      ['10.231.0.13', join(LAB_DIR, 'hosts', 'lab-ppc64le', 'ssh_host_ed25519_key.pub')],
      ['10.231.0.14', join(LAB_DIR, 'hosts', 'lab-s390x', 'ssh_host_ed25519_key.pub')],
      ['10.231.0.21', join(LAB_DIR, 'hv-x86_64', 'ssh', 'ssh_host_ed25519_key.pub')],
      ['10.231.0.22', join(LAB_DIR, 'hv-ppc64le', 'ssh', 'ssh_host_ed25519_key.pub')],
    ];
    for (const [addr, pub] of hosts) {
      const key = (await readFile(pub, 'utf8')).split(' ').slice(0, 2).join(' ');
      expect(lines.filter((l) => l.split(' ')[0] === addr), addr).toEqual([`${addr} ${key}`]);
    }
  });
});

describe('scripts/lab status', () => {
  it('exits 0 and reports workers, hypervisors, Keystone/Glance and the cloud fakes', async () => {
    const r = await sh(LAB_SCRIPT, ['status'], process.env, 180_000);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const name of ['lab-x86_64', 'lab-aarch64', 'lab-ppc64le', 'lab-s390x']) expect(r.stdout).toMatch(new RegExp(`^${name}\\s.*\\s(x86_64|aarch64|ppc64le|s390x)$`, 'm'));
    expect(r.stdout).toMatch(/farmlab-hv-x86_64\s+10\.231\.0\.21\s+up/);
    expect(r.stdout).toMatch(/farmlab-hv-ppc64le\s+10\.231\.0\.22\s+up/);
    expect(r.stdout).toMatch(/keystone running/);
    expect(r.stdout).toMatch(/glance running/);
    expect(r.stdout).toMatch(/^s3\s+127\.0\.0\.1:19000\s+up/m);
    expect(r.stdout).toMatch(/^aws\s+127\.0\.0\.1:19001\s+up/m);
    expect(r.stdout).toMatch(/^ibm\s+127\.0\.0\.1:19002\s+up/m);
    expect(r.stdout).toMatch(/^cos\s+127\.0\.0\.1:19003\s+up/m);
    // Secrets stay out of the status output.
    expect(r.stdout + r.stderr).not.toContain(labEnv.AWS_SECRET_ACCESS_KEY!);
    expect(r.stdout + r.stderr).not.toContain(labEnv.IBMCLOUD_API_KEY!);
  });
});

describe('lab-cloud.ts across a restart', () => {
  // A second instance on free ports with its own state directory: the lab's own instance (which
  // other work may be using) is left alone.
  interface Instance {
    child: ChildProcess;
    exited: Promise<number | null>;
  }
  let dir: string;
  let ports: number[];
  let current: Instance | undefined;

  async function freePorts(n: number): Promise<number[]> {
    const servers = await Promise.all(
      Array.from({ length: n }, () => new Promise<Server>((resolve) => { const srv = createServer(); srv.listen(0, '127.0.0.1', () => resolve(srv)); })),
    );
    const out = servers.map((srv) => (srv.address() as AddressInfo).port);
    await Promise.all(servers.map((srv) => new Promise((resolve) => srv.close(resolve))));
    return out;
  }

  async function start(): Promise<Record<string, string>> {
    const child = spawn(
      process.execPath,
      [join(REPO, 'bin', 'tsnode.js'), join(REPO, 'test', 'fakes', 'lab-cloud.ts'), '--dir', dir, '--ports', ports.join(','), '--clouds-yaml', join(dir, 'clouds.yaml')],
      { stdio: 'ignore', env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    current = { child, exited };
    await until('the second lab-cloud to be ready', async () => {
      const text = await readFile(join(dir, 'lab-cloud.log'), 'utf8').catch(() => '');
      expect(text).not.toContain('failed to start');
      return text.includes(`ready (pid ${child.pid})`) ? true : undefined;
    }, 240);
    const out = await run('bash', ['-c', '. "$1" && env -0', 'bash', join(dir, 'env')], { env: { PATH: process.env.PATH } });
    return Object.fromEntries(out.stdout.split('\0').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  }

  async function stop(): Promise<number | null> {
    const c = current!;
    current = undefined;
    c.child.kill('SIGTERM');
    return c.exited;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'farm-lab-cloud-'));
    ports = await freePorts(4);
  });

  afterAll(async () => {
    if (current) await stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps buckets, snapshots, AMIs and IBM images, and its keys; stops cleanly on SIGTERM', async () => {
    const env = await start();
    const [s3Url, awsUrl, ibmUrl] = ports.map((p) => `http://127.0.0.1:${p}`);
    expect([env.AWS_ENDPOINT_URL_S3, env.AWS_ENDPOINT_URL_EC2]).toEqual([s3Url, awsUrl]);
    expect(env.AWS_ACCESS_KEY_ID).not.toBe(labEnv.AWS_ACCESS_KEY_ID); // its own keys, not the lab's
    const credentials = { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! };
    const s3c = new S3Client({
      endpoint: s3Url, region: 'us-east-1', forcePathStyle: true, credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const ec2 = (url = awsUrl) => new EC2Client({ endpoint: url, region: 'us-west-2', credentials });
    const auth = () => new IamAuthenticator({ apikey: env.IBMCLOUD_API_KEY!, url: ibmUrl });
    const vpc = () => new VpcClient({ serviceUrl: `${ibmUrl}/us-south/v1`, authenticator: auth() });

    // A small disk with data in it: raw for AWS, qcow2 for IBM.
    const raw = join(dir, 'disk.raw');
    await writeFile(raw, Buffer.alloc(1 << 20, 0x5a));
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, join(dir, 'disk.qcow2')]);
    await s3c.send(new PutObjectCommand({ Bucket: 'farm-lab-imports', Key: 'disk.raw', Body: await readFile(raw) }));
    await s3c.send(new PutObjectCommand({ Bucket: 'farm-lab-cos', Key: 'disk.qcow2', Body: await readFile(join(dir, 'disk.qcow2')) }));
    s3c.destroy();

    // AWS: s3-import (the fake reads the object from its S3 server), then RegisterImage.
    const a = ec2();
    const { ImportTaskId } = await a.send(
      new ImportSnapshotCommand({ DiskContainer: { Format: 'RAW', UserBucket: { S3Bucket: 'farm-lab-imports', S3Key: 'disk.raw' } } }),
    );
    const task = await until('the import task', async () => {
      const t = (await a.send(new DescribeImportSnapshotTasksCommand({ ImportTaskIds: [ImportTaskId!] }))).ImportSnapshotTasks?.[0];
      expect(t?.SnapshotTaskDetail?.Status).not.toBe('deleted');
      return t?.SnapshotTaskDetail?.Status === 'completed' ? t.SnapshotTaskDetail : undefined;
    });
    expect(task.DiskImageSize).toBe(1 << 20);
    const name = `farm-lab-services-${RUN_ID}`;
    const { ImageId } = await a.send(
      new RegisterImageCommand({
        Name: name, Architecture: 'x86_64', RootDeviceName: '/dev/xvda', VirtualizationType: 'hvm', EnaSupport: true,
        BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: task.SnapshotId!, VolumeType: 'gp3', DeleteOnTermination: true } }],
      }),
    );
    await until('the AMI', async () => {
      const img = (await a.send(new DescribeImagesCommand({ ImageIds: [ImageId!] }))).Images?.[0];
      return img?.State === 'available' ? img : undefined;
    });
    a.destroy();

    // IBM: a VPC image from the COS object, in the farm-lab resource group.
    const group = (await new ResourceManagerV2({ authenticator: auth(), serviceUrl: ibmUrl }).listResourceGroups({ name: 'farm-lab' })).result.resources![0]!;
    const created = await vpc().createImage({
      name,
      file: { href: 'cos://us-south/farm-lab-cos/disk.qcow2' },
      operating_system: { name: 'ubuntu-22-04-amd64' },
      resource_group: { id: group.id! },
    });
    const available = await until('the VPC image', async () => {
      const img = await vpc().getImage(created.id);
      expect(img.status).not.toBe('failed');
      return img.status === 'available' ? img : undefined;
    });
    const envText = await readFile(join(dir, 'env'), 'utf8');
    // A client holding a token across the restart (the farm's uploaders do) keeps using it.
    const held = auth();
    await held.authenticate({ headers: {} });

    expect(await stop()).toBe(0);
    expect(await readFile(join(dir, 'lab-cloud.log'), 'utf8')).toMatch(/SIGTERM: stopping\n.*stopped\n$/);
    const gone = await sh('curl', ['-s', '-o', '/dev/null', '--max-time', '2', `${awsUrl}/`]);
    expect(gone.code).not.toBe(0);

    const env2 = await start();
    expect(await readFile(join(dir, 'env'), 'utf8')).toBe(envText); // same keys, same file
    expect(env2.IBMCLOUD_API_KEY).toBe(env.IBMCLOUD_API_KEY);
    const b = ec2();
    try {
      const imgs = (await b.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [name] }] }))).Images;
      expect(imgs?.map((i) => [i.ImageId, i.State, i.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId])).toEqual([[ImageId, 'available', task.SnapshotId]]);
      const snap = (await b.send(new DescribeSnapshotsCommand({ SnapshotIds: [task.SnapshotId!] }))).Snapshots?.[0];
      expect([snap?.State, snap?.VolumeSize]).toEqual(['completed', 1]);
      // The snapshot's data is still there: deleting the image, then the snapshot, works as before.
      await b.send(new DeregisterImageCommand({ ImageId: ImageId! }));
      await b.send(new DeleteSnapshotCommand({ SnapshotId: task.SnapshotId! }));
    } finally {
      b.destroy();
    }
    const after: VpcImage = await new VpcClient({ serviceUrl: `${ibmUrl}/us-south/v1`, authenticator: held }).getImage(created.id);
    expect([after.name, after.status, after.resource_group.id, after.file?.checksums?.sha256]).toEqual([
      name, 'available', group.id, available.file?.checksums?.sha256,
    ]);
    const { Buckets } = await (async () => {
      const c = new S3Client({ endpoint: s3Url, region: 'us-east-1', forcePathStyle: true, credentials });
      try {
        return await c.send(new ListBucketsCommand({}));
      } finally {
        c.destroy();
      }
    })();
    expect(Buckets?.map((x) => x.Name).sort()).toEqual(['farm-lab-cos', 'farm-lab-imports']);
    expect(await stop()).toBe(0);
  });
});
