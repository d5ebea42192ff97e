// Faults on the lab, through the real CLI: a coordinator SIGKILLed in the middle of its uploads
// (then `farm upload ID` must leave exactly one image per target and nothing half-made), and a
// worker whose link dies (an iptables DROP in its namespace) mid-build or after its arch is done.
// Times are measured on the farm's own stderr lines, stamped as they arrive.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DescribeImagesCommand, DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, farm, type FarmRun } from '../support/cli.ts';
import { ensureLab, labEnv, labExec, labInventoryVariant, markedSource } from '../support/lab.ts';
import { cutLink, type CutLink } from '../support/link.ts';
import type { Manifest } from '../../src/records/manifest.ts';
import type { BuildState } from '../../src/records/state.ts';

const run = promisify(execFile);

let env: Record<string, string>;
const cuts: CutLink[] = [];

beforeAll(async () => {
  await ensureLab();
  env = await labEnv();
});

afterAll(async () => {
  for (const c of cuts.splice(0)) await c.restore();
});

interface Line {
  at: number;
  text: string;
}

interface Watched extends FarmRun {
  lines: Line[];
  exitAt: number;
}

/** Runs the CLI, stamping each stderr line as it arrives; `onLine` may act on the child. */
function watched(
  args: string[],
  onLine: (line: Line, child: ChildProcess) => void = () => {},
  timeoutMs = 600_000,
  onSpawn: (child: ChildProcess) => void = () => {},
  withEnv: Record<string, string> = env,
): Promise<Watched> {
  const lines: Line[] = [];
  let child: ChildProcess | undefined;
  let partial = '';
  return farm(args, {
    env: withEnv,
    timeoutMs,
    onSpawn: (c) => {
      child = c;
      onSpawn(c);
    },
    onStderr: (text) => {
      partial += text;
      const parts = partial.split('\n');
      partial = parts.pop()!;
      for (const t of parts) {
        const line = { at: performance.now(), text: t };
        lines.push(line);
        onLine(line, child!);
      }
    },
  }).then((r) => ({ ...r, lines, exitAt: performance.now() }));
}

const find = (r: Watched, re: RegExp) => r.lines.find((l) => re.test(l.text));

async function openstack(args: string[]): Promise<string> {
  const { stdout } = await run('openstack', ['--os-cloud', 'lab', ...args], { env: { ...process.env, ...env }, maxBuffer: 16 << 20 });
  return stdout;
}

async function glanceImages(name: string): Promise<Array<{ ID: string; Status: string }>> {
  return (JSON.parse(await openstack(['image', 'list', '-f', 'json', '--name', name])) as Array<{ ID: string; Name: string; Status: string }>).filter(
    (i) => i.Name === name,
  );
}

function ec2(region: string, e = env): EC2Client {
  return new EC2Client({ region, credentials: { accessKeyId: e.AWS_ACCESS_KEY_ID!, secretAccessKey: e.AWS_SECRET_ACCESS_KEY! }, endpoint: e.AWS_ENDPOINT_URL_EC2 });
}

async function snapshotsOf(region: string, buildId: string, e = env): Promise<string[]> {
  const r = await ec2(region, e).send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: 'tag:farm-build-id', Values: [buildId] }] }));
  return (r.Snapshots ?? []).map((s) => s.State ?? '?');
}

async function amis(region: string, name: string, e = env): Promise<string[]> {
  const r = await ec2(region, e).send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [name] }] }));
  return (r.Images ?? []).map((i) => i.State ?? '?');
}

async function state(dir: string, buildId: string): Promise<BuildState> {
  return JSON.parse(await readFile(join(dir, 'builds', buildId, 'state.json'), 'utf8')) as BuildState;
}

/** What a cut link left on the worker (the build ran on without us): removed so others find the lab clean. */
async function cleanWorker(host: string, buildId: string): Promise<void> {
  const filter = `label=io.farm.build-id=${buildId}`;
  const containers = (await labExec(host, ['podman', 'ps', '-aq', '--filter', filter])).split('\n').filter(Boolean);
  if (containers.length) await labExec(host, ['podman', 'rm', '-f', ...containers]);
  const images = (await labExec(host, ['podman', 'images', '-q', '--filter', filter])).split('\n').filter(Boolean);
  if (images.length) await labExec(host, ['podman', 'rmi', '-f', ...new Set(images)]);
  await labExec(host, ['rm', '-rf', '--', `/var/lib/farm/output/${buildId}`]);
}

describe('a coordinator killed during its uploads', () => {
  let variant: Awaited<ReturnType<typeof labInventoryVariant>>;
  let buildId: string;
  let manifest: Manifest;

  beforeAll(async () => {
    const base = await labInventoryVariant();
    const src = await markedSource(base.dir);
    variant = await labInventoryVariant((doc) => {
      doc.source.containerfile = src.containerfile;
      doc.source.context = src.context;
      // One arch, two targets: AWS EBS direct (with its copy) and the lab's Glance.
      const glance = doc.arches.ppc64le.targets.find((t: { kind: string }) => t.kind === 'openstack');
      doc.arches = { x86_64: { types: ['ami', 'raw'], targets: [...doc.arches.x86_64.targets.filter((t: { kind: string }) => t.kind === 'aws'), glance] } };
    });
    const r = await farm(['build', '--arch', 'x86_64', '--inventory', variant.file, '--no-upload', '--json', '--quiet'], { env });
    expect(r.code, r.stderr).toBe(0);
    manifest = JSON.parse(r.stdout) as Manifest;
    buildId = manifest.last_run_uuid;
  });

  it('OpenStack: the killed upload\'s queued image is removed by `farm upload ID`, which leaves exactly one active image', async () => {
    const killed = await watched(['upload', buildId, '--inventory', variant.file, '--only', 'openstack'], (line, child) => {
      if (/openstack: created image \S+/.test(line.text)) child.kill('SIGKILL');
    });
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    const name = (await state(variant.dir, buildId)).arches.x86_64!.uploads.openstack!.halfMade![0]!.name;
    const left = await glanceImages(name);
    expect(left.map((i) => i.Status)).toEqual([expect.stringMatching(/^(queued|saving|uploading|importing)$/)]);
    const rec = (await state(variant.dir, buildId)).arches.x86_64!.uploads.openstack!;
    expect(rec.halfMade!.map((h) => [h.kind, h.id])).toEqual([['glance-image', left[0]!.ID]]);

    const again = await watched(['upload', buildId, '--inventory', variant.file, '--only', 'openstack', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(`removed glance-image ${name} (${left[0]!.ID})`);
    const now = await glanceImages(name);
    expect(now.map((i) => i.Status)).toEqual(['active']);
    expect(now[0]!.ID).not.toBe(left[0]!.ID);
    const after = (await state(variant.dir, buildId)).arches.x86_64!.uploads.openstack!;
    expect(after.step).toBe('uploaded');
    expect(after.halfMade).toBeUndefined();
    expect(after.images.map((i) => i.imageId)).toEqual([now[0]!.ID]);
  });

  it('AWS EBS direct: the killed upload\'s pending snapshot is removed; one AMI per region and only their snapshots remain', async () => {
    const killed = await watched(['upload', buildId, '--inventory', variant.file, '--only', 'aws'], (line, child) => {
      if (/snapshot snap-\S+ started/.test(line.text)) child.kill('SIGKILL');
    });
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    const rec = (await state(variant.dir, buildId)).arches.x86_64!.uploads['aws-us-east-1']!;
    expect(rec.halfMade!.map((h) => h.kind)).toEqual(['ebs-snapshot']);
    expect(await snapshotsOf('us-east-1', buildId)).toEqual(['pending']); // StartSnapshot, no CompleteSnapshot
    const name = rec.halfMade![0]!.name;

    const again = await watched(['upload', buildId, '--inventory', variant.file, '--only', 'aws', '--json']);
    expect(again.code, again.stderr).toBe(0);
    // With or without its id: the kill may come before the id is written (then the tag finds it).
    expect(again.stderr).toMatch(/removed ebs-snapshot \S+ (\(snap-[0-9a-f]+\) )?in us-east-1/);
    expect(await amis('us-east-1', name)).toEqual(['available']);
    expect(await amis('us-west-2', name)).toEqual(['available']);
    // Exactly the snapshots behind the two AMIs: nothing pending, nothing orphaned.
    expect(await snapshotsOf('us-east-1', buildId)).toEqual(['completed']);
    expect(await snapshotsOf('us-west-2', buildId)).toEqual(['completed']);
    const after = (await state(variant.dir, buildId)).arches.x86_64!.uploads['aws-us-east-1']!;
    expect(after.step).toBe('uploaded');
    expect(after.halfMade).toBeUndefined();
  });
});

describe('a coordinator killed during an S3 multipart upload (AWS s3-import)', () => {
  // The lab's S3 server as this checkout serves it (ListMultipartUploads, AbortMultipartUpload):
  // a second lab-cloud process on free ports with its own state and keys, beside the lab's own.
  let cloudDir: string;
  let cloud: ChildProcess | undefined;
  let cloudEnv: Record<string, string>;
  const BUCKET = 'farm-lab-imports';

  beforeAll(async () => {
    cloudDir = await mkdtemp(join(tmpdir(), 'farm-faults-cloud-'));
    const servers = await Promise.all([0, 1, 2, 3].map(() => new Promise<Server>((r) => { const srv = createServer(); srv.listen(0, '127.0.0.1', () => r(srv)); })));
    const ports = servers.map((srv) => (srv.address() as AddressInfo).port);
    await Promise.all(servers.map((srv) => new Promise((r) => srv.close(r))));
    const child = spawn(process.execPath, [join(REPO, 'bin', 'tsnode.js'), join(REPO, 'test', 'fakes', 'lab-cloud.ts'), '--dir', cloudDir, '--ports', ports.join(',')], {
      stdio: 'ignore',
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    });
    cloud = child;
    for (let i = 0; ; i++) {
      const log = await readFile(join(cloudDir, 'lab-cloud.log'), 'utf8').catch(() => '');
      if (log.includes(`ready (pid ${child.pid})`)) break;
      if (log.includes('failed to start') || i > 600) throw new Error(`the second lab-cloud did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const out = await run('bash', ['-c', '. "$1" && env -0', 'bash', join(cloudDir, 'env')], { env: { PATH: process.env.PATH } });
    const vars = Object.fromEntries(out.stdout.split('\0').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    cloudEnv = { ...env, ...vars };
  });

  afterAll(async () => {
    if (cloud && cloud.exitCode === null) {
      const exited = new Promise((r) => cloud!.once('exit', r));
      cloud.kill('SIGTERM');
      await exited;
    }
    if (cloudDir) await rm(cloudDir, { recursive: true, force: true });
  });

  it('the killed upload\'s multipart upload is aborted and its object gone; one AMI, only its snapshot', async () => {
    const variant = await labInventoryVariant((doc) => {
      const aws = { ...doc.arches.aarch64.targets.find((t: { kind: string }) => t.kind === 'aws'), naming: 'farm-faults-import-{date}-{time}-{arch}' };
      doc.arches = { x86_64: { types: ['ami'], targets: [aws] } };
    });
    const built = await farm(['build', '--arch', 'x86_64', '--inventory', variant.file, '--no-upload', '--json', '--quiet'], { env: cloudEnv });
    expect(built.code, built.stderr).toBe(0);
    const buildId = (JSON.parse(built.stdout) as Manifest).last_run_uuid;

    const s3 = new S3Client({
      endpoint: cloudEnv.AWS_ENDPOINT_URL_S3, region: 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: cloudEnv.AWS_ACCESS_KEY_ID!, secretAccessKey: cloudEnv.AWS_SECRET_ACCESS_KEY! },
    });
    const multiparts = async () => (await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads ?? [];
    const objects = async () => ((await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }))).Contents ?? []).map((o) => o.Key);
    expect(await multiparts()).toEqual([]);
    // Killed as soon as S3 holds a multipart upload of ours: its parts are on the server.
    let watching = true;
    const killed = await watched(['upload', buildId, '--inventory', variant.file, '--only', 'aws'], () => {}, 600_000, (child) => {
      void (async () => {
        while (watching && child.exitCode === null) {
          if ((await multiparts().catch(() => [])).length > 0) return child.kill('SIGKILL');
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
    }, cloudEnv);
    watching = false;
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    expect((await multiparts()).map((u) => u.Key)).toEqual([expect.stringMatching(/^farm-import\/farm-faults-import-.*\.raw$/)]);
    const rec = (await state(variant.dir, buildId)).arches.x86_64!.uploads['aws-us-east-1']!;
    expect(rec.halfMade!.map((h) => h.kind)).toEqual(['s3-object', 's3-multipart']);

    const again = await watched(['upload', buildId, '--inventory', variant.file, '--only', 'aws', '--json'], () => {}, 600_000, () => {}, cloudEnv);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/removed s3-multipart farm-import\/\S+ in farm-lab-imports/);
    expect(await multiparts()).toEqual([]);
    expect(await objects()).toEqual([]);
    const name = rec.halfMade![0]!.name.replace(/^farm-import\//, '').replace(/-[0-9a-f-]{36}\.raw$/, '');
    expect(await amis('us-east-1', name, cloudEnv)).toEqual(['available']);
    expect(await snapshotsOf('us-east-1', buildId, cloudEnv)).toEqual(['completed']); // the AMI's, no other
    s3.destroy();
    const after = (await state(variant.dir, buildId)).arches.x86_64!.uploads['aws-us-east-1']!;
    expect(after.step).toBe('uploaded');
    expect(after.halfMade).toBeUndefined();
  });
});

describe('a worker whose link dies', () => {
  it('mid-build: the arch fails after the keepalive timeout, saying the connection to the worker was lost and after how long', async () => {
    const variant = await labInventoryVariant((doc) => {
      doc.arches = { x86_64: { types: ['raw'], targets: [] } };
      doc.settings.keepalive_s = 2; // 4 unanswered keepalives: a dead link is noticed in ~10 s
    });
    let cut: Promise<CutLink> | undefined;
    const r = await watched(['build', '--arch', 'x86_64', '--inventory', variant.file], (line) => {
      if (!cut && /podman build \S+ on lab-x86_64/.test(line.text)) {
        cut = cutLink('x86_64');
        cut.then((c) => cuts.push(c), () => {});
      }
    }, 300_000);
    expect(cut, r.stderr).toBeDefined();
    const c = await cut!;
    await c.restore();
    const buildId = find(r, /^\[farm\]\s+build \d{8}t\d{6}z/)!.text.match(/build (\d{8}t\d{6}z)/)![1]!;
    await cleanWorker('x86_64', buildId);
    expect(r.code, r.stderr).toBe(1);
    const failure = find(r, /\[x86_64\]\s+error: /);
    expect(failure?.text).toMatch(/error: lost the SSH connection to lab-x86_64 \(10\.231\.0\.11\) after \d+s: no keepalive answer for 8 s \(during /);
    expect(r.stderr).not.toMatch(/failed: aborted/);
    const detected = (failure!.at - c.at) / 1000;
    console.log(`link cut mid-build: failure reported ${detected.toFixed(1)} s after the cut (keepalive_s 2)`);
    expect(detected).toBeGreaterThan(5);
    expect(detected).toBeLessThan(30);
    const st = await state(variant.dir, buildId);
    expect(st.arches.x86_64!.error).toMatch(/lost the SSH connection to lab-x86_64/);
  });

  it('after its arch is done: `farm build` exits within seconds of saying it succeeded', async () => {
    const variant = await labInventoryVariant((doc) => {
      doc.arches = { x86_64: { types: ['raw'], targets: doc.arches.x86_64.targets.filter((t: { kind: string }) => t.kind === 'libvirt') } };
    });
    let cut: Promise<CutLink> | undefined;
    // Cut once the worker is done with (the build's outputs removed), while the upload runs:
    // only closing the connection is left to do over the dead link.
    const r = await watched(['build', '--arch', 'x86_64', '--inventory', variant.file], (line) => {
      if (!cut && /\[x86_64\]\s+removed the build's image and outputs from lab-x86_64/.test(line.text)) {
        cut = cutLink('x86_64');
        cut.then((c) => cuts.push(c), () => {});
      }
    }, 240_000);
    expect(cut, r.stderr).toBeDefined();
    const c = await cut!;
    await c.restore();
    expect(r.code, r.stderr).toBe(0);
    const uploaded = find(r, /libvirt: published/)!;
    const succeeded = find(r, /\[farm\]\s+build \S+ succeeded/)!;
    expect(uploaded.at).toBeGreaterThan(c.at); // the link was dead before the farm closed it
    const closing = (succeeded.at - uploaded.at) / 1000;
    const exitDelay = (r.exitAt - succeeded.at) / 1000;
    console.log(`link cut after the arch: closing took ${closing.toFixed(1)} s, exit ${exitDelay.toFixed(1)} s after "succeeded"`);
    expect(closing).toBeLessThan(10);
    expect(exitDelay).toBeLessThan(5);
  });
});
