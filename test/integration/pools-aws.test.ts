// The aws pool provider on the lab, with the real CLI: x86_64 and aarch64 VMs are EC2 instances of
// the lab's EC2 fake (test/fakes/aws/instances.ts), each a real namespace host made from the
// instance's user-data (scripts/lab.d/ec2-host): the host key the farm made and pinned, the
// client key it accepts. Every instance is terminated and every lab host gone afterwards; a VM
// answering with another host key is refused and terminated.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { REPO, farm } from '../support/cli.ts';
import { LAB_DIR, ensureLab, labEnv } from '../support/lab.ts';
import type { BuildState } from '../../src/records/state.ts';

const run = promisify(execFile);
const env: Record<string, string> = {};
let ec2: EC2Client;

async function awsInventory(change: (doc: any) => void = () => {}): Promise<{ file: string; dir: string }> {
  const doc = parse(await readFile(join(REPO, 'inventory', 'lab-pools.yaml'), 'utf8'), { merge: true }) as any;
  const dir = await mkdtemp(join(tmpdir(), 'farm-pools-aws-'));
  doc.source = { containerfile: join(REPO, 'inventory', 'lab', 'Containerfile'), context: join(REPO, 'inventory', 'lab') };
  doc.settings.builds_dir = join(dir, 'builds');
  doc.pools = doc.pools.filter((p: any) => p.settings.provider === 'aws');
  for (const p of doc.pools) p.settings = { ...p.settings };
  change(doc);
  for (const a of Object.keys(doc.arches)) if (!doc.pools.some((p: any) => p.arch === a)) delete doc.arches[a];
  const file = join(dir, 'inventory.yaml');
  await writeFile(file, stringify(doc, { aliasDuplicateObjects: false }));
  return { file, dir };
}
async function lastState(dir: string): Promise<BuildState> {
  const { stdout } = await run('sh', ['-c', `ls -d ${dir}/builds/2*/ | tail -1`]);
  return JSON.parse(await readFile(join(stdout.trim(), 'state.json'), 'utf8')) as BuildState;
}
/** The build's instances (by its farm:build-id tag) are all terminated, and no pool host is left. */
async function expectAllGone(buildId: string): Promise<number> {
  const r = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:farm:build-id', Values: [buildId] }] }));
  const insts = r.Reservations?.flatMap((x) => x.Instances ?? []) ?? [];
  for (const i of insts) expect(i.State?.Name, i.InstanceId).toBe('terminated');
  expect((await run('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith('farmpool-'))).toEqual([]);
  expect((await run(join(REPO, 'scripts', 'lab.d', 'resalloc'), ['list'], { env: { ...process.env, FARM_LAB_DIR: LAB_DIR } })).stdout.trim()).toBe('');
  expect((await run('losetup', ['-a'])).stdout).not.toContain(join(LAB_DIR, 'pool'));
  return insts.length;
}

beforeAll(async () => {
  await ensureLab();
  Object.assign(env, await labEnv(), { FARM_LAB_DIR: LAB_DIR });
  ec2 = new EC2Client({ endpoint: env.AWS_ENDPOINT_URL_EC2, region: env.AWS_REGION, credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! }, maxAttempts: 2 });
}, 900_000);
afterAll(() => ec2?.destroy());

describe('aws pools on the lab', () => {
  it('builds x86_64 and aarch64 on EC2 instances only, and terminates every one', async () => {
    const inv = await awsInventory();
    const r = await farm(['build', '--arch', 'x86_64,aarch64', '--inventory', inv.file], { env });
    const out = r.stdout + r.stderr;
    expect(r.code, out).toBe(0);
    expect(out).toMatch(/taking a x86_64 VM \(aws\)/);
    expect(out).toMatch(/prepare: data volume \/run\/lab-disks\/data on \/var\/lib\/farm\/output: formatted ext4 and mounted/);
    const state = await lastState(inv.dir);
    expect(state.status).toBe('succeeded');
    expect(state.pools!.map((p) => [p.arch, p.provider]).sort()).toEqual([['aarch64', 'aws'], ['x86_64', 'aws']]);
    for (const p of state.pools!) {
      expect(p.id).toMatch(/^i-[0-9a-f]{17}$/);
      expect(p.at.released).toBeTruthy();
      // No secret in the records: the key dir is named, the keys are not there.
      expect(p.data).not.toMatch(/PRIVATE KEY/);
    }
    expect(state.arches.aarch64!.runs![0]!.worker).toMatch(/^aws-aarch64-i-/);
    expect(await expectAllGone(state.buildId)).toBe(2);
  }, 600_000);

  it('refuses a VM answering with a host key other than the injected one, and terminates it', async () => {
    // The fake's lab-only tag: the host makes its own key instead of the user-data's.
    const inv = await awsInventory((d) => {
      d.pools = d.pools.filter((p: any) => p.arch === 'x86_64');
      d.pools[0].settings.tags = { 'farm-lab:host-key': 'other' };
    });
    const r = await farm(['build', '--arch', 'x86_64', '--inventory', inv.file], { env });
    const out = r.stdout + r.stderr;
    expect(r.code, out).not.toBe(0);
    expect(out).toMatch(/host key/i);
    const state = await lastState(inv.dir);
    expect(state.pools?.length).toBe(1);
    expect(state.pools![0]!.at.released).toBeTruthy();
    expect(state.pools![0]!.at.ssh).toBeFalsy();
    expect(await expectAllGone(state.buildId)).toBe(1);
  }, 600_000);
});
