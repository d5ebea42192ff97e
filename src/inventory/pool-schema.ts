// Pools in the inventory: VMs taken per build from an allocator (resalloc, or the user's own
// commands), prepared, and given back. And `prepare:`, the preparation a worker gets before its
// first build (static workers and pool VMs alike; workers/prepare.ts runs it).

import { AWS_POOL_PROVIDER } from '../../workers/pools/types.ts';
import { z } from 'zod';
import { archSchema, identityFileField, knownHostsField, nameField as name, nonEmpty } from '../core/fields.ts';

const remotePath = nonEmpty.regex(/^\//, 'use an absolute path on the worker, e.g. /var/lib/containers');
const size = z.string().regex(/^\d+[kKmMgG]?$/, 'a size as mount takes it: a number with k, M or G, e.g. 3G');
const duration = z
  .string()
  .regex(/^\d+(\.\d+)?(s|m|h|d)$/, 'a duration: a number and a unit (s, m, h, d), e.g. 90s, 30m or 6h');

export const prepareSchema = z
  .object({
    data_volume: z
      .object({
        device: remotePath.describe('Block device on the worker, e.g. /dev/vdb'),
        mount: remotePath.default('/var/lib/containers').describe('Where it is mounted'),
        fs: z.enum(['ext4', 'xfs']).default('ext4'),
        format: z
          .enum(['if-blank', 'force'])
          .default('if-blank')
          .describe('if-blank: format only a device without any filesystem; force: format whatever it holds'),
      })
      .strict()
      .optional()
      .describe('A data volume, formatted (when blank) and mounted when not mounted yet'),
    tmpfs: z
      .object({ run: size.optional().describe('Size of /run, e.g. 3G'), tmp: size.optional().describe('Size of /tmp, e.g. 8G') })
      .strict()
      .optional(),
    podman_socket: z.boolean().default(true).describe('Enable the podman socket (systemctl enable --now podman.socket)'),
    pull_builder: z.boolean().default(true).describe("Pull the builder image as builder.pull says"),
  })
  .strict();

const reach = {
  user: nonEmpty.default('root').describe('SSH user on the VMs'),
  port: z.number().int().min(1).max(65535).default(22).describe('SSH port when the data names none'),
  identity_file: identityFileField.optional().describe('Private key for the VMs; without it, ssh-agent'),
  known_hosts: knownHostsField
    .optional()
    .describe('known_hosts vouching for the VMs (the farm did not make them, so their keys must be known)'),
  pass_env: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')).default([]).describe('Environment variables the allocator command gets'),
};

export const resallocSchema = z
  .object({
    provider: z.literal('resalloc'),
    command: z.array(nonEmpty).min(1).default(['resalloc']).describe('The resalloc client (argv)'),
    connection: z.string().regex(/^https?:\/\/\S+$/, 'an http:// or https:// URL').optional().describe('resalloc --connection URL'),
    tags: z.array(nonEmpty).min(1).describe('Ticket tags, e.g. [arch_x86_64]'),
    wait_timeout: duration.default('30m').describe('Longest wait for ticket-wait'),
    ...reach,
  })
  .strict();

export const commandPoolSchema = z
  .object({
    provider: z.literal('command'),
    allocate: z.array(nonEmpty).min(1).describe('Command (argv) that takes a VM and prints its data: a host line, or YAML (---) with host, ssh_port, id'),
    release: z.array(nonEmpty).min(1).describe('Command (argv) that gives it back: gets the id as its last argument, the data on stdin'),
    timeout: duration.default('30m').describe('Longest run of the allocate command'),
    ...reach,
  })
  .strict();

const awsId = (prefix: string, example: string) =>
  z.string().regex(new RegExp(`^${prefix}-[0-9a-f]{8,17}$`), `an id like ${example}`);

export const awsPoolSchema = z
  .object({
    provider: z.literal(AWS_POOL_PROVIDER),
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'a region name, e.g. us-east-1').optional().describe('Region (default: AWS_REGION / the profile)'),
    image: z
      .union([
        z.object({ id: awsId('ami', 'ami-0123456789abcdef0').describe('AMI id') }).strict(),
        z
          .object({
            name: nonEmpty.describe('Image name pattern (* and ?), e.g. Fedora-Cloud-Base-AmazonEC2.x86_64-41-*'),
            owner: z.string().regex(/^(\d{12}|self|amazon|aws-marketplace)$/, 'an account id (12 digits), self, amazon or aws-marketplace').describe('Image owner, e.g. 125523088429 (Fedora)'),
          })
          .strict(),
      ])
      .describe('Base image: {id} or the newest image matching {name, owner}; boot a known-good one, not the farm\'s own'),
    instance_type: z
      .object({ x86_64: z.string().regex(/^[a-z0-9-]+\.[a-z0-9]+$/, 'an instance type, e.g. m6i.large').optional(), aarch64: z.string().regex(/^[a-z0-9-]+\.[a-z0-9]+$/, 'an instance type, e.g. m7g.large').optional() })
      .strict()
      .describe('Instance type per arch; the pool\'s arch needs one'),
    subnet: awsId('subnet', 'subnet-0123456789abcdef0').optional(),
    security_groups: z.array(awsId('sg', 'sg-0123456789abcdef0')).default([]),
    root_volume_gib: z.number().int().min(8).max(16384).default(50).describe('Root volume size (GiB)'),
    data_volume_gib: z.number().int().min(1).max(16384).optional().describe('Extra data volume (GiB), as /dev/sdf; prepare.data_volume formats and mounts it'),
    tags: z.record(z.string().regex(/^(?!aws:)(?!farm:)[^\s].{0,127}$/, 'a tag key not starting with aws: or farm: (the farm sets farm:build-id, farm:pool)'), z.string().max(256)).default({}),
    user: nonEmpty.default('fedora').describe('SSH user on the VMs (Fedora Cloud: fedora)'),
    running_timeout: duration.default('10m').describe('Longest wait for the instance to be running'),
    ssh_timeout: duration.default('10m').describe('Longest wait for SSH once it runs'),
  })
  .strict();

export const poolSchema = z
  .object({
    name: name.describe('Pool name, unique among workers and pools'),
    arch: archSchema.describe('Arch of its VMs, as `uname -m` prints it'),
    max: z.number().int().min(1).default(1).describe('VMs this pool may hold at once'),
    lifetime: duration.default('6h').describe('Longest a VM may live; `farm workers sweep` gives back older ones'),
    prefer: z.enum(['static', 'pool']).default('static').describe('static: static workers of the arch first; pool: this pool first'),
    settings: z.discriminatedUnion('provider', [resallocSchema, commandPoolSchema, awsPoolSchema]).describe('The provider and its settings'),
    prepare: prepareSchema.optional().describe('Preparation of each VM before its first build'),
    max_builds: z.number().int().min(1).default(1).describe('Concurrent builds on one VM'),
    podman_socket: remotePath.default('/run/podman/podman.sock'),
    storage: remotePath.default('/var/lib/containers/storage'),
    output_dir: remotePath.default('/var/lib/farm/output'),
    min_free_gib: z
      .object({ storage: z.number().nonnegative().default(10), output: z.number().nonnegative().default(10) })
      .strict()
      .default({ storage: 10, output: 10 }),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.settings.provider !== AWS_POOL_PROVIDER) return;
    if (p.arch !== 'x86_64' && p.arch !== 'aarch64') {
      ctx.addIssue({ code: 'custom', path: ['arch'], message: `the aws provider serves x86_64 and aarch64, not ${p.arch}: use resalloc, command or ibmcloud for it` });
    } else if (!p.settings.instance_type[p.arch]) {
      ctx.addIssue({ code: 'custom', path: ['settings', 'instance_type', p.arch], message: `pool arch is ${p.arch}: name its instance type, e.g. instance_type: { ${p.arch}: ${p.arch === 'x86_64' ? 'm6i.large' : 'm7g.large'} }` });
    }
  });

export type Pool = z.infer<typeof poolSchema>;
export type PrepareConfig = z.infer<typeof prepareSchema>;

/** Seconds of a duration the schema accepted. */
export function durationSeconds(d: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(d)!;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'];
}
