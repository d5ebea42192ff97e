// The aws pool provider's pieces without the lab: cloud-init user-data (injected host and client
// keys, the dead-man switch), the pool settings' schema (errors with line, field and fix), and the
// EC2 fake's instance API refusing what EC2 refuses (test/fakes/aws/instances.ts; the lab's
// instances with real hosts are exercised in test/integration/pools-aws.test.ts).

import { DescribeImagesCommand, DescribeInstancesCommand, EC2Client, RunInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startAwsFake, type AwsFake } from '../fakes/aws/server.ts';
import { FEDORA_OWNER } from '../fakes/aws/instances.ts';
import { poolSchema } from '../../src/inventory/pool-schema.ts';
import { cloudInitUserData } from '../../workers/pools/userdata.ts';
import { problemsOf } from './inventory-support.ts';

describe('cloud-init user-data', () => {
  const ud = cloudInitUserData({
    hostPrivateKey: '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----',
    hostPublicKey: 'ssh-ed25519 AAAAhost farm-host\n',
    authorizedKey: 'ssh-ed25519 AAAAclient farm-client',
    lifetimeSeconds: 5401,
    user: 'fedora',
  });
  it('is #cloud-config with the injected keys only', () => {
    expect(ud.startsWith('#cloud-config\n')).toBe(true);
    const doc = parse(ud) as Record<string, any>;
    expect(doc.ssh_keys).toEqual({ ed25519_private: '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n', ed25519_public: 'ssh-ed25519 AAAAhost farm-host' });
    expect(doc.ssh_authorized_keys).toEqual(['ssh-ed25519 AAAAclient farm-client']);
    expect(doc.ssh_deletekeys).toBe(true);
    expect(doc.ssh_genkeytypes).toEqual([]);
    expect(doc.disable_root).toBeUndefined();
  });
  it('powers off at the lifetime (rounded up to minutes), on every boot', () => {
    const doc = parse(ud) as Record<string, any>;
    expect(doc.bootcmd).toEqual([['shutdown', '-P', '+91', 'farm pool lifetime reached']]);
  });
  it('lets root in when the pool logs in as root', () => {
    const doc = parse(cloudInitUserData({ hostPrivateKey: 'k', hostPublicKey: 'p', authorizedKey: 'a', lifetimeSeconds: 10, user: 'root' })) as Record<string, any>;
    expect(doc.disable_root).toBe(false);
    expect(doc.bootcmd[0][2]).toBe('+1');
  });
});

describe('aws pool settings', () => {
  const pool = (settings: Record<string, unknown>, arch = 'x86_64') => poolSchema.safeParse({ name: 'p', arch, settings: { provider: 'aws', ...settings } });
  it('accepts an AMI id or a name pattern and owner, with defaults', () => {
    const a = pool({ image: { id: 'ami-0123456789abcdef0' }, instance_type: { x86_64: 'm6i.large' } });
    expect(a.success).toBe(true);
    expect(a.data!.settings).toMatchObject({ root_volume_gib: 50, user: 'fedora', security_groups: [], tags: {}, running_timeout: '10m', ssh_timeout: '10m' });
    expect(pool({ image: { name: 'Fedora-Cloud-Base-AmazonEC2.aarch64-41-*', owner: '125523088429' }, instance_type: { aarch64: 'm7g.large' } }, 'aarch64').success).toBe(true);
  });
  it('refuses what cannot launch', () => {
    const issue = (r: ReturnType<typeof pool>) => r.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    expect(issue(pool({ image: { id: 'ami-0123456789abcdef0' }, instance_type: { aarch64: 'm7g.large' } }))).toMatch(/^settings\.instance_type\.x86_64: pool arch is x86_64: name its instance type/);
    expect(issue(pool({ image: { id: 'ami-0123456789abcdef0' }, instance_type: { x86_64: 'm6i.large' } }, 's390x'))).toMatch(/^arch: the aws provider serves x86_64 and aarch64, not s390x/);
    expect(issue(pool({ image: { id: 'ami-123' }, instance_type: { x86_64: 'm6i.large' } }))).toMatch(/an id like ami-/);
    expect(pool({ image: { id: 'ami-0123456789abcdef0' }, instance_type: { x86_64: 'm6i.large' }, tags: { 'farm:pool': 'x' } }).success).toBe(false);
    expect(issue(pool({ image: { id: 'ami-0123456789abcdef0' }, instance_type: { x86_64: 'm6i.large' }, known_hosts: '/x' }))).toMatch(/known_hosts/);
  });
  it('reports file, line, field and fix in an inventory', async () => {
    const problems = await problemsOf(
      ['version: 1', 'source: { containerfile: Containerfile }', 'pools:', '  - name: a', '    arch: aarch64', '    settings:', '      provider: aws', '      image: { id: ami-0123456789abcdef0 }', '      instance_type: { x86_64: m6i.large }', ''].join('\n'),
    );
    const p = problems.find((x) => x.field === 'pools[0].settings.instance_type.aarch64');
    expect(p, JSON.stringify(problems)).toBeDefined();
    expect(p!.line).toBeGreaterThanOrEqual(6);
    expect(`${p!.message} ${p!.fix ?? ''}`).toMatch(/instance_type: \{ aarch64: m7g\.large \}/);
  });
});

describe('the EC2 fake refuses what EC2 refuses', () => {
  let fake: AwsFake;
  let ec2: EC2Client;
  beforeAll(async () => {
    fake = await startAwsFake({});
    ec2 = new EC2Client({ endpoint: fake.endpoint, region: 'us-east-1', credentials: fake.credentials, maxAttempts: 1 });
  });
  afterAll(async () => {
    ec2?.destroy();
    await fake?.stop();
  });
  const runReq = (ImageId: string, InstanceType: string) => new RunInstancesCommand({ ImageId, InstanceType: InstanceType as never, MinCount: 1, MaxCount: 1 });
  const name = (p: Promise<unknown>) => p.then(() => 'ok', (e: Error) => `${e.name}: ${e.message}`);

  it('serves Fedora public images by owner and name', async () => {
    const r = await ec2.send(new DescribeImagesCommand({ Owners: [FEDORA_OWNER], Filters: [{ Name: 'name', Values: ['Fedora-Cloud-Base-AmazonEC2.*'] }, { Name: 'architecture', Values: ['arm64'] }] }));
    expect(r.Images?.map((i) => i.Name)).toEqual(['Fedora-Cloud-Base-AmazonEC2.aarch64-41-1.4']);
  });
  it('refuses an unknown AMI, an unknown type, an arch mismatch', async () => {
    const x86 = (await ec2.send(new DescribeImagesCommand({ Owners: [FEDORA_OWNER], Filters: [{ Name: 'architecture', Values: ['x86_64'] }] }))).Images![0]!.ImageId!;
    expect(await name(ec2.send(runReq('ami-0000000000000dead', 'm6i.large')))).toMatch(/^InvalidAMIID\.NotFound/);
    expect(await name(ec2.send(runReq(x86, 'm6x.huge')))).toMatch(/^InvalidParameterValue: Invalid value 'm6x.huge' for InstanceType/);
    expect(await name(ec2.send(runReq(x86, 'm7g.large')))).toMatch(/^InvalidParameterValue: The architecture 'arm64' of the specified instance type does not match the architecture 'x86_64'/);
  });
  it('runs, describes and terminates an instance', async () => {
    const x86 = (await ec2.send(new DescribeImagesCommand({ Owners: [FEDORA_OWNER], Filters: [{ Name: 'architecture', Values: ['x86_64'] }] }))).Images![0]!.ImageId!;
    const r = await ec2.send(runReq(x86, 'm6i.large'));
    const id = r.Instances![0]!.InstanceId!;
    const state = async () => (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations![0]!.Instances![0]!.State!.Name;
    for (let i = 0; i < 20 && (await state()) !== 'running'; i++) await new Promise((res) => setTimeout(res, 50));
    expect(await state()).toBe('running');
    const t = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect(t.TerminatingInstances?.[0]?.PreviousState?.Name).toBe('running');
    for (let i = 0; i < 20 && (await state()) !== 'terminated'; i++) await new Promise((res) => setTimeout(res, 50));
    expect(await state()).toBe('terminated');
    expect(await name(ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-0123456789abcdef0'] })))).toMatch(/^InvalidInstanceID\.NotFound/);
  });
});
