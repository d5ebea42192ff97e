// EC2 instances for pool workers: RunInstances / DescribeInstances / TerminateInstances, plus the
// public base images a pool launches from (Fedora Cloud's, owner 125523088429). With `hostScript`
// (the lab: scripts/lab.d/ec2-host) every instance is a REAL lab host made from its user-data: the
// cloud-init `ssh_keys.ed25519_private` becomes sshd's host key, `ssh_authorized_keys` the keys it
// accepts, and the instance type's arch its `uname -m`. Refuses what EC2 refuses: an unknown AMI,
// an unknown instance type, an AMI whose architecture the instance type does not have.
// Lab-only tag `farm-lab:host-key=other`: the host makes its own key instead (a VM that answers
// with a key other than the injected one).

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { QueryParams } from './query.ts';
import { ACCOUNT_ID, AwsFault, applyTags, newId, tagList, type Region, type Tags } from './state.ts';
import type { XmlValue } from './xml.ts';

type Members = Record<string, XmlValue>;
type Handler = (region: Region, p: QueryParams) => Members | Promise<Members>;

export const FEDORA_OWNER = '125523088429';

interface BaseImage { id: string; name: string; architecture: 'x86_64' | 'arm64'; creationDate: string }
const BASE_IMAGES: BaseImage[] = [
  { id: 'ami-0fed0040a00000861', name: 'Fedora-Cloud-Base-AmazonEC2.x86_64-40-1.14', architecture: 'x86_64', creationDate: '2024-04-16T00:00:00.000Z' },
  { id: 'ami-0fed0041a00000861', name: 'Fedora-Cloud-Base-AmazonEC2.x86_64-41-1.4', architecture: 'x86_64', creationDate: '2024-10-23T00:00:00.000Z' },
  { id: 'ami-0fed0041a000a6401', name: 'Fedora-Cloud-Base-AmazonEC2.aarch64-41-1.4', architecture: 'arm64', creationDate: '2024-10-23T00:00:00.000Z' },
];

/** Instance families the fake knows, and their architecture. */
const FAMILIES: Record<string, 'x86_64' | 'arm64'> = { t3: 'x86_64', t3a: 'x86_64', m6i: 'x86_64', c6i: 'x86_64', m7i: 'x86_64', t4g: 'arm64', m6g: 'arm64', c7g: 'arm64', m7g: 'arm64' };
const SIZES = ['nano', 'micro', 'small', 'medium', 'large', 'xlarge', '2xlarge', '4xlarge'];

type StateName = 'pending' | 'running' | 'shutting-down' | 'terminated';
const CODES: Record<StateName, number> = { pending: 0, running: 16, 'shutting-down': 32, terminated: 48 };

interface Instance {
  id: string;
  imageId: string;
  type: string;
  architecture: string;
  state: StateName;
  stateReason?: string;
  ip?: string;
  ticket?: string;
  subnetId?: string;
  tags: Tags;
  launchTime: Date;
  shutdownBehavior: string;
  volumes: number;
}

function wildcard(pattern: string): RegExp {
  return new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
}

function script(argv: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, timeout: 300_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${argv.join(' ')}: ${String(stderr).trim().split('\n').slice(-3).join(' / ') || err.message}`)) : resolve(String(stdout)),
    );
  });
}

export class Instances {
  private readonly byRegion = new Map<string, Map<string, Instance>>();
  constructor(private readonly hostScript: string | undefined) {}

  private of(r: Region): Map<string, Instance> {
    let m = this.byRegion.get(r.name);
    if (!m) this.byRegion.set(r.name, (m = new Map()));
    return m;
  }

  /** Wraps DescribeImages so that the public base images answer for their owner. */
  handlers(describeImages: Handler): Record<string, Handler> {
    return {
      RunInstances: (r, p) => this.run(r, p),
      DescribeInstances: (r, p) => this.describe(r, p),
      TerminateInstances: (r, p) => this.terminate(r, p),
      DescribeImages: (r, p) => (p.list('Owner').includes(FEDORA_OWNER) || p.list('ImageId').some((id) => BASE_IMAGES.some((b) => b.id === id)) ? this.baseImages(p) : describeImages(r, p)),
    };
  }

  private baseImages(p: QueryParams): Members {
    let imgs = BASE_IMAGES.filter((b) => !p.list('ImageId').length || p.list('ImageId').includes(b.id));
    for (const m of p.members('Filter')) {
      const name = p.get(`${m}.Name`);
      const values = p.list(`${m}.Value`);
      const field = (b: BaseImage): string | undefined => ({ name: b.name, architecture: b.architecture, state: 'available', 'image-id': b.id })[name ?? ''];
      if (!['name', 'architecture', 'state', 'image-id'].includes(name ?? '')) throw new AwsFault('InvalidParameterValue', `The filter '${name}' is invalid`);
      imgs = imgs.filter((b) => values.some((v) => wildcard(v).test(field(b)!)));
    }
    return {
      imagesSet: imgs.map((b) => ({ imageId: b.id, imageLocation: `${FEDORA_OWNER}/${b.name}`, imageState: 'available', imageOwnerId: FEDORA_OWNER, creationDate: b.creationDate, isPublic: true, architecture: b.architecture, imageType: 'machine', name: b.name, rootDeviceType: 'ebs', rootDeviceName: '/dev/sda1', virtualizationType: 'hvm', bootMode: 'uefi-preferred' })),
    };
  }

  private imageArch(r: Region, id: string): string {
    if (!/^ami-[0-9a-f]{8,17}$/.test(id)) throw new AwsFault('InvalidAMIID.Malformed', `Invalid id: "${id}" (expecting "ami-...")`);
    const arch = BASE_IMAGES.find((b) => b.id === id)?.architecture ?? r.images.get(id)?.architecture;
    if (!arch) throw new AwsFault('InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`);
    return arch;
  }

  private async run(r: Region, p: QueryParams): Promise<Members> {
    const imageId = p.get('ImageId');
    if (!imageId) throw new AwsFault('MissingParameter', 'The request must contain the parameter ImageId');
    const type = p.get('InstanceType') ?? 'm1.small';
    const [family, size] = type.split('.');
    const typeArch = FAMILIES[family ?? ''];
    if (!typeArch || !SIZES.includes(size ?? '')) throw new AwsFault('InvalidParameterValue', `Invalid value '${type}' for InstanceType.`);
    const arch = this.imageArch(r, imageId);
    if (arch !== typeArch) {
      throw new AwsFault('InvalidParameterValue', `The architecture '${typeArch}' of the specified instance type does not match the architecture '${arch}' of the specified AMI. Specify an instance type and an AMI that have matching architectures, and try again.`);
    }
    if (p.get('MinCount') !== '1' || p.get('MaxCount') !== '1') throw new AwsFault('InvalidParameterValue', 'the lab fake launches one instance per request (MinCount=MaxCount=1)');
    const behavior = p.get('InstanceInitiatedShutdownBehavior') ?? 'stop';
    if (!['stop', 'terminate'].includes(behavior)) throw new AwsFault('InvalidParameterValue', `Invalid value '${behavior}' for InstanceInitiatedShutdownBehavior.`);
    const subnet = p.get('SubnetId');
    if (subnet !== undefined && !/^subnet-[0-9a-f]{8,17}$/.test(subnet)) throw new AwsFault('InvalidSubnetID.Malformed', `Invalid id: "${subnet}"`);
    for (const g of p.list('SecurityGroupId')) if (!/^sg-[0-9a-f]{8,17}$/.test(g)) throw new AwsFault('InvalidGroupId.Malformed', `Invalid id: "${g}"`);
    const tags = new Map<string, string>();
    for (const m of p.members('TagSpecification')) {
      const rt = p.get(`${m}.ResourceType`);
      if (rt !== 'instance' && rt !== 'volume') throw new AwsFault('InvalidParameterValue', `'${rt}' is not a valid taggable resource type for this operation.`);
      if (rt === 'instance') applyTags(tags, p.members(`${m}.Tag`).map((t) => ({ key: p.get(`${t}.Key`), value: p.get(`${t}.Value`) })));
    }
    let userData: Record<string, unknown> = {};
    const raw = p.get('UserData');
    if (raw !== undefined) {
      const text = Buffer.from(raw, 'base64').toString('utf8');
      if (!text.startsWith('#cloud-config')) throw new AwsFault('InvalidParameterValue', 'the lab fake understands #cloud-config user-data only');
      userData = (parseYaml(text) ?? {}) as Record<string, unknown>;
    }
    const inst: Instance = {
      id: newId('i'), imageId, type, architecture: arch, state: 'pending', tags, launchTime: new Date(), shutdownBehavior: behavior,
      volumes: p.members('BlockDeviceMapping').length, ...(subnet ? { subnetId: subnet } : {}),
    };
    this.of(r).set(inst.id, inst);
    void this.boot(inst, userData);
    return { reservationId: newId('r'), ownerId: ACCOUNT_ID, groupSet: [], instancesSet: [this.xml(inst)] };
  }

  /** Makes the instance's lab host (or, without a host script, just marks it running). */
  private async boot(inst: Instance, ud: Record<string, unknown>): Promise<void> {
    if (!this.hostScript) {
      inst.ip = `10.231.1.${1 + Math.floor(Math.random() * 250)}`;
      inst.state = 'running';
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), 'farm-ec2-ud-'));
    try {
      const keys = (ud.ssh_keys ?? {}) as Record<string, unknown>;
      const auth = Array.isArray(ud.ssh_authorized_keys) ? ud.ssh_authorized_keys.map(String) : [];
      await writeFile(join(dir, 'authorized_keys'), auth.map((k) => `${k}\n`).join(''), { mode: 0o600 });
      const env: Record<string, string> = { FARM_LAB_AUTHORIZED_KEYS: join(dir, 'authorized_keys') };
      if (typeof keys.ed25519_private === 'string' && inst.tags.get('farm-lab:host-key') !== 'other') {
        await writeFile(join(dir, 'host_key'), keys.ed25519_private.endsWith('\n') ? keys.ed25519_private : `${keys.ed25519_private}\n`, { mode: 0o600 });
        env.FARM_LAB_HOST_KEY = join(dir, 'host_key');
      }
      const labArch = inst.architecture === 'arm64' ? 'aarch64' : 'x86_64';
      const out = (await script([this.hostScript, 'make', inst.id, labArch], env)).trim().split('\n');
      inst.ticket = out[0];
      inst.ip = out[1];
      if (inst.state === 'pending') inst.state = 'running';
      else void this.destroy(inst); // terminated while booting
    } catch (err) {
      inst.state = 'terminated';
      inst.stateReason = `Server.InternalError: ${(err as Error).message}`;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async destroy(inst: Instance): Promise<void> {
    try {
      if (this.hostScript && inst.ticket) await script([this.hostScript, 'remove', inst.ticket], {});
      inst.ticket = undefined;
    } catch (err) {
      inst.stateReason = `Server.InternalError: ${(err as Error).message}`;
    }
    inst.state = 'terminated';
  }

  private describe(r: Region, p: QueryParams): Members {
    const ids = p.list('InstanceId');
    const all = this.of(r);
    for (const id of ids) if (!all.has(id)) throw new AwsFault('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
    let list = [...all.values()].filter((i) => !ids.length || ids.includes(i.id));
    for (const m of p.members('Filter')) {
      const name = p.get(`${m}.Name`) ?? '';
      const values = p.list(`${m}.Value`);
      list = list.filter((i) => {
        const v = name.startsWith('tag:') ? i.tags.get(name.slice(4)) : name === 'instance-state-name' ? i.state : name === 'tag-key' ? [...i.tags.keys()].find((k) => values.includes(k)) : undefined;
        if (!name.startsWith('tag') && name !== 'instance-state-name') throw new AwsFault('InvalidParameterValue', `The filter '${name}' is invalid`);
        return v !== undefined && values.some((x) => wildcard(x).test(v));
      });
    }
    return { reservationSet: list.map((i) => ({ reservationId: `r-${i.id.slice(2)}`, ownerId: ACCOUNT_ID, groupSet: [], instancesSet: [this.xml(i)] })) };
  }

  private async terminate(r: Region, p: QueryParams): Promise<Members> {
    const ids = p.list('InstanceId');
    if (!ids.length) throw new AwsFault('MissingParameter', 'The request must contain the parameter InstanceId');
    const all = this.of(r);
    for (const id of ids) if (!all.has(id)) throw new AwsFault('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
    const set = ids.map((id) => {
      const i = all.get(id)!;
      const previous = i.state;
      if (previous === 'running') {
        i.state = 'shutting-down';
        void this.destroy(i);
      } else if (previous === 'pending') {
        i.state = 'shutting-down'; // boot() removes the host once it exists
      }
      return { instanceId: id, currentState: { code: CODES[i.state], name: i.state }, previousState: { code: CODES[previous], name: previous } };
    });
    return { instancesSet: set };
  }

  private xml(i: Instance): XmlValue {
    return {
      instanceId: i.id, imageId: i.imageId, instanceState: { code: CODES[i.state], name: i.state },
      privateIpAddress: i.state === 'running' ? i.ip : undefined, instanceType: i.type, launchTime: i.launchTime, architecture: i.architecture,
      subnetId: i.subnetId, stateReason: i.stateReason ? { code: i.stateReason.split(':')[0], message: i.stateReason } : undefined,
      tagSet: i.tags.size ? tagList(i.tags) : undefined,
    };
  }
}
