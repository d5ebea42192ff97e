// The aws provider: one EC2 instance per VM, from a base image (an AMI id, or the newest image of
// an owner matching a name pattern), tagged farm:build-id and farm:pool. Each VM gets a fresh host
// key and client key (made here, in a private temp dir) through cloud-init, and the host key is
// pinned: a VM answering with another key is refused by the SSH layer. Dead-man switch:
// InstanceInitiatedShutdownBehavior=terminate plus a power-off timer in the user-data. Waits for
// running and for SSH are bounded; release terminates and confirms `terminated`. Credentials and
// endpoints come from the SDK's usual chain (AWS_* env, profiles), never the inventory.

import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EC2Client, Instance } from '@aws-sdk/client-ec2';
import { FarmError, errorMessage } from '../../src/core/errors.ts';
import { fingerprint } from '../../src/core/hostkeys.ts';
import { pollUntil } from '../../src/core/poll.ts';
import { run } from '../../src/core/process.ts';
import type { Allocation, AllocateContext, PoolProvider } from './types.ts';
import { cloudInitUserData } from './userdata.ts';

export interface AwsPoolSettings {
  region?: string | undefined;
  arch: 'x86_64' | 'aarch64';
  image: { id: string } | { name: string; owner: string };
  instance_type: string;
  subnet?: string | undefined;
  security_groups: readonly string[];
  root_volume_gib: number;
  data_volume_gib?: number | undefined;
  tags: Readonly<Record<string, string>>;
  user: string;
  lifetime_s: number;
  running_timeout_s: number;
  ssh_timeout_s: number;
}

/** What release needs, kept in the records (`data`): JSON, no secret in it. */
interface AwsData { instance: string; region: string; host?: string; keys: string }

const EC2_ARCH = { x86_64: 'x86_64', aarch64: 'arm64' } as const;
const TERMINATE_TIMEOUT_MS = 300_000;

export class AwsProvider implements PoolProvider {
  readonly provider = 'aws';
  private client: EC2Client | undefined;
  constructor(
    readonly pool: string,
    private readonly s: AwsPoolSettings,
  ) {}

  private sdk: typeof import('@aws-sdk/client-ec2') | undefined;

  // The SDK loads when a VM is asked for: commands that never take one stay light.
  private async ec2(): Promise<{ c: EC2Client; sdk: typeof import('@aws-sdk/client-ec2') }> {
    this.sdk ??= await import('@aws-sdk/client-ec2');
    this.client ??= new this.sdk.EC2Client({ ...(this.s.region ? { region: this.s.region } : {}), maxAttempts: 4 });
    return { c: this.client, sdk: this.sdk };
  }

  /** The AMI: the id as given, or the newest available image of the owner whose name matches. */
  async image(signal?: AbortSignal): Promise<{ id: string; rootDevice: string }> {
    const img = this.s.image;
    const { c, sdk: { DescribeImagesCommand } } = await this.ec2();
    const r = await c.send(
      'id' in img
        ? new DescribeImagesCommand({ ImageIds: [img.id] })
        : new DescribeImagesCommand({ Owners: [img.owner], Filters: [{ Name: 'name', Values: [img.name] }, { Name: 'state', Values: ['available'] }, { Name: 'architecture', Values: [EC2_ARCH[this.s.arch]] }] }),
      { abortSignal: signal },
    );
    const newest = [...(r.Images ?? [])].sort((a, b) => (b.CreationDate ?? '').localeCompare(a.CreationDate ?? ''))[0];
    if (!newest?.ImageId) {
      throw new FarmError('WORKER_UNHEALTHY', `pool ${this.pool}: no image ${'id' in img ? img.id : `named ${img.name} of owner ${img.owner} (${EC2_ARCH[this.s.arch]})`}`, { hint: 'check settings.image' });
    }
    return { id: newest.ImageId, rootDevice: newest.RootDeviceName ?? '/dev/sda1' };
  }

  async check(): Promise<string> {
    const img = await this.image();
    return `image ${img.id} found, instance type ${this.s.instance_type}`;
  }

  async allocate(signal: AbortSignal, ctx?: AllocateContext): Promise<Allocation> {
    const requestedAt = Date.now();
    const keys = await mkdtemp(join(tmpdir(), 'farm-pool-keys-'));
    await chmod(keys, 0o700);
    let data: AwsData | undefined;
    try {
      for (const k of ['host', 'client']) {
        await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `farm-${k}-${this.pool}`, '-f', join(keys, k)], { what: 'ssh-keygen', code: 'WORKER_UNHEALTHY', timeoutMs: 30_000 });
      }
      const hostPub = (await readFile(join(keys, 'host.pub'), 'utf8')).trim();
      const userData = cloudInitUserData({
        hostPrivateKey: await readFile(join(keys, 'host'), 'utf8'),
        hostPublicKey: hostPub,
        authorizedKey: (await readFile(join(keys, 'client.pub'), 'utf8')).trim(),
        lifetimeSeconds: this.s.lifetime_s,
        user: this.s.user,
      });
      const image = await this.image(signal);
      const tags = [
        { Key: 'Name', Value: `farm-${this.pool}` },
        { Key: 'farm:pool', Value: this.pool },
        ...(ctx?.buildId ? [{ Key: 'farm:build-id', Value: ctx.buildId }] : []),
        ...Object.entries(this.s.tags).map(([Key, Value]) => ({ Key, Value })),
      ];
      const ebs = (gib: number) => ({ VolumeSize: gib, VolumeType: 'gp3' as const, DeleteOnTermination: true });
      const { c, sdk } = await this.ec2();
      const r = await c.send(
        new sdk.RunInstancesCommand({
          ImageId: image.id,
          InstanceType: this.s.instance_type as never,
          MinCount: 1,
          MaxCount: 1,
          ...(this.s.subnet ? { SubnetId: this.s.subnet } : {}),
          ...(this.s.security_groups.length ? { SecurityGroupIds: [...this.s.security_groups] } : {}),
          UserData: Buffer.from(userData).toString('base64'),
          InstanceInitiatedShutdownBehavior: 'terminate',
          BlockDeviceMappings: [
            { DeviceName: image.rootDevice, Ebs: ebs(this.s.root_volume_gib) },
            ...(this.s.data_volume_gib ? [{ DeviceName: '/dev/sdf', Ebs: ebs(this.s.data_volume_gib) }] : []),
          ],
          TagSpecifications: [{ ResourceType: 'instance', Tags: tags }, { ResourceType: 'volume', Tags: tags }],
        }),
        { abortSignal: signal },
      );
      const id = r.Instances?.[0]?.InstanceId;
      if (!id) throw new FarmError('WORKER_UNHEALTHY', `pool ${this.pool}: RunInstances answered without an instance id`);
      data = { instance: id, region: await this.regionName(), keys };
      const inst = await pollUntil(
        async (status) => {
          const i = await this.describe(id);
          status(i?.State?.Name ?? 'unknown');
          if (i?.State?.Name === 'running' && i.PrivateIpAddress) return i;
          if (i?.State?.Name === 'terminated' || i?.State?.Name === 'shutting-down') {
            throw new FarmError('WORKER_UNHEALTHY', `pool ${this.pool}: instance ${id} ${i.State.Name}${i.StateReason?.Message ? `: ${i.StateReason.Message}` : ''}`);
          }
          return undefined;
        },
        { what: `instance ${id} of pool ${this.pool} to be running`, signal, intervalMs: 1000, factor: 1.5, maxIntervalMs: 5000, timeoutMs: this.s.running_timeout_s * 1000, timeoutCode: 'WORKER_UNHEALTHY' },
      );
      const host = inst.PublicIpAddress && !inst.PrivateIpAddress ? inst.PublicIpAddress : inst.PrivateIpAddress!;
      data.host = host;
      await pollUntil(async (status) => ((await sshBanner(host, 22, status)) ? true : undefined), {
        what: `SSH on instance ${id} (${host}) of pool ${this.pool}`, signal, intervalMs: 500, factor: 1.5, maxIntervalMs: 5000, timeoutMs: this.s.ssh_timeout_s * 1000, timeoutCode: 'WORKER_UNHEALTHY',
      });
      return {
        pool: this.pool, provider: this.provider, id, data: JSON.stringify(data), requestedAt, readyAt: Date.now(),
        endpoint: { host, port: 22, user: this.s.user, host_key: fingerprint(Buffer.from(hostPub.split(/\s+/)[1] ?? '', 'base64')), identity_file: join(keys, 'client') },
      };
    } catch (err) {
      // Nothing half-made is left: the instance is terminated, the keys removed.
      if (data) await this.release({ id: data.instance, data: JSON.stringify(data) }).catch(() => undefined);
      else await rm(keys, { recursive: true, force: true });
      throw err;
    }
  }

  private async regionName(): Promise<string> {
    return this.s.region ?? (await (await this.ec2()).c.config.region());
  }

  private async describe(id: string): Promise<Instance | undefined> {
    const { c, sdk } = await this.ec2();
    const r = await c.send(new sdk.DescribeInstancesCommand({ InstanceIds: [id] }));
    return r.Reservations?.flatMap((x) => x.Instances ?? []).find((i) => i.InstanceId === id);
  }

  async release(a: Pick<Allocation, 'id' | 'data'>): Promise<void> {
    let keys: string | undefined;
    try {
      keys = (JSON.parse(a.data) as Partial<AwsData>).keys;
    } catch {
      // records from elsewhere: nothing local to remove
    }
    try {
      const { c, sdk } = await this.ec2();
      await c.send(new sdk.TerminateInstancesCommand({ InstanceIds: [a.id] }));
    } catch (err) {
      if ((err as { name?: string }).name !== 'InvalidInstanceID.NotFound') throw new FarmError('WORKER_UNHEALTHY', `pool ${this.pool}: TerminateInstances ${a.id}: ${errorMessage(err)}`);
    }
    await pollUntil(
      async (status) => {
        const i = await this.describe(a.id).catch((err: { name?: string }) => (err.name === 'InvalidInstanceID.NotFound' ? ({ State: { Name: 'terminated' } } as Instance) : Promise.reject(err)));
        status(i?.State?.Name ?? 'gone');
        return !i || i.State?.Name === 'terminated' ? true : undefined;
      },
      { what: `instance ${a.id} of pool ${this.pool} to be terminated`, signal: AbortSignal.timeout(TERMINATE_TIMEOUT_MS + 10_000), intervalMs: 500, factor: 1.5, maxIntervalMs: 5000, timeoutMs: TERMINATE_TIMEOUT_MS, timeoutCode: 'WORKER_UNHEALTHY' },
    );
    if (keys && /farm-pool-keys-/.test(keys)) await rm(keys, { recursive: true, force: true });
  }
}

/** True once something on host:port speaks SSH (its banner), bounded to a few seconds. */
function sshBanner(host: string, port: number, status: (s: string) => void): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port, timeout: 3000 });
    const done = (ok: boolean, why: string) => {
      status(why);
      sock.destroy();
      resolve(ok);
    };
    sock.once('data', (b) => done(b.toString('latin1').startsWith('SSH-'), 'answering'));
    sock.once('timeout', () => done(false, 'no answer'));
    sock.once('error', (e) => done(false, e.message));
  });
}
