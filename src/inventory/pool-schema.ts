// Pools in the inventory: VMs taken per build from an allocator (resalloc, or the user's own
// commands), prepared, and given back. And `prepare:`, the preparation a worker gets before its
// first build (static workers and pool VMs alike; workers/prepare.ts runs it).

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

export const poolSchema = z
  .object({
    name: name.describe('Pool name, unique among workers and pools'),
    arch: archSchema.describe('Arch of its VMs, as `uname -m` prints it'),
    max: z.number().int().min(1).default(1).describe('VMs this pool may hold at once'),
    lifetime: duration.default('6h').describe('Longest a VM may live; `farm workers sweep` gives back older ones'),
    prefer: z.enum(['static', 'pool']).default('static').describe('static: static workers of the arch first; pool: this pool first'),
    settings: z.discriminatedUnion('provider', [resallocSchema, commandPoolSchema]).describe('The provider and its settings'),
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
  .strict();

export type Pool = z.infer<typeof poolSchema>;
export type PrepareConfig = z.infer<typeof prepareSchema>;

/** Seconds of a duration the schema accepted. */
export function durationSeconds(d: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(d)!;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'];
}
