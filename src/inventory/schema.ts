// The inventory: what to build (source, builder), where (workers) and where it goes (per-arch
// targets). Every object is strict, so a typo is an error instead of a silently ignored setting.
// Paths are relative to the inventory file's directory.

import { z } from 'zod';
import { Cron } from 'croner';
import { ARCHES } from '../core/arch.ts';
import { hypervisorUriProblems } from '../../uploaders/libvirt/uri.ts';
import { gitUrlRule, identityFileRule, knownHostsRule, remotePathRule, repoPathRule, ruled } from './field-rules.ts';

export const archSchema = z.enum(ARCHES);

/** bib's disk image types that the farm can fetch and hand to uploaders. */
export const IMAGE_TYPES = ['ami', 'raw', 'qcow2', 'vmdk', 'vhd', 'gce'] as const;
export const imageTypeSchema = z.enum(IMAGE_TYPES);
export type ImageType = z.infer<typeof imageTypeSchema>;

const nonEmpty = z.string().trim().min(1);
const name = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]*$/, 'use lower-case letters, digits, ".", "_" and "-", starting with a letter or digit');

export const sourceSchema = z
  .object({
    containerfile: nonEmpty.describe('Path of the shared Containerfile'),
    context: nonEmpty.default('.').describe('Build context directory sent to each worker'),
    build_args: z.record(z.string(), z.string()).default({}).describe('podman build --build-arg values'),
  })
  .strict();

export const builderSchema = z
  .object({
    image: nonEmpty
      .default('quay.io/centos-bootc/bootc-image-builder:latest')
      .describe('bootc-image-builder image reference'),
    pull: z.enum(['always', 'missing', 'never', 'newer']).default('newer').describe('When to pull the builder image'),
    rootfs: z.enum(['xfs', 'ext4', 'btrfs']).default('xfs'),
    extra_args: z.array(z.string()).default([]).describe('Extra bib arguments, e.g. ["--use-librepo=True"]'),
    config: nonEmpty.optional().describe('Optional bib config.toml, mounted at /config.toml'),
  })
  .strict();

export const namingSchema = z
  .object({
    name: name.default('farm').describe('Image name prefix, {name} in templates'),
    template: nonEmpty
      .default('{name}-{date}-{time}-{arch}')
      .describe('Image name template: {name} {arch} {date} (YYYYmmdd) {time} (HHMMSS) {build_id}'),
  })
  .strict();

const gib = z.number().nonnegative();

// A pinned host key, as `ssh-keygen -lf` prints it; workers and hypervisors share the format.
const hostKey = z
  .string()
  .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'a pinned key is "SHA256:" and 43 base64 characters, as ssh-keygen -lf prints');

// Paths on the worker, not on this host: nothing to resolve them against, so they must be absolute.
const remotePath = ruled(nonEmpty.regex(/^\//, 'use an absolute path on the worker, e.g. /var/lib/farm/output'), remotePathRule);

// Local files that OpenSSH opens by name (field-rules.ts says why some characters cannot be in them).
const identityFile = ruled(nonEmpty, identityFileRule);
const knownHostsFile = ruled(nonEmpty, knownHostsRule);

const hypervisorUri = ruled(z.string().regex(/^qemu\+ssh:\/\//, 'use a qemu+ssh://user@host/system URI'), (uri) =>
  /^qemu\+ssh:\/\//.test(uri) ? hypervisorUriProblems(uri).map(({ message, fix }) => ({ message, fix })) : undefined,
);

export const workerSchema = z
  .object({
    name: name.describe('Worker name, unique in the inventory'),
    host: nonEmpty.describe('SSH host name or address'),
    port: z.number().int().min(1).max(65535).default(22).describe('SSH port'),
    user: nonEmpty.default('root').describe('SSH user; bib needs rootful podman'),
    arch: archSchema.describe('Native arch of the worker, as `uname -m` prints it'),
    identity_file: identityFile.optional().describe('Private key file; without it, ssh-agent (SSH_AUTH_SOCK)'),
    known_hosts: knownHostsFile.optional().describe('known_hosts file to verify the host key (default ~/.ssh/known_hosts)'),
    host_key: hostKey.optional().describe('Pinned host key fingerprint; takes precedence over known_hosts'),
    podman_socket: remotePath.default('/run/podman/podman.sock').describe('Podman API socket on the worker'),
    storage: remotePath.default('/var/lib/containers/storage').describe('Container storage on the worker'),
    output_dir: remotePath.default('/var/lib/farm/output').describe('Where bib writes outputs on the worker'),
    max_builds: z.number().int().min(1).default(1).describe('Concurrent builds on this worker'),
    min_free_gib: z
      .object({ storage: gib.default(10), output: gib.default(10) })
      .strict()
      .default({ storage: 10, output: 10 })
      .describe('Free space required before a build starts'),
  })
  .strict();

// --- targets (uploads are done by uploaders/; the schema lives here so `inventory check` covers them)

const targetBase = {
  name: name.optional().describe('Target name for --only/--skip (default: kind, or kind-region)'),
  naming: nonEmpty.optional().describe('Image name template for this target'),
};

export const awsTargetSchema = z
  .object({
    kind: z.literal('aws'),
    ...targetBase,
    region: nonEmpty.describe('AWS region, e.g. us-east-1'),
    method: z.enum(['ebs-direct', 's3-import']).default('ebs-direct'),
    bucket: nonEmpty.optional().describe('S3 bucket, required by method s3-import'),
    boot_mode: z.enum(['uefi-preferred', 'uefi', 'legacy-bios']).default('uefi-preferred'),
    imds_v2: z.boolean().default(false),
    copy_regions: z.array(nonEmpty).default([]),
    share_accounts: z.array(z.string().regex(/^\d{12}$/, 'an AWS account id is 12 digits')).default([]),
    deprecate_after_days: z.number().int().positive().optional(),
    tags: z.record(z.string(), z.string()).default({}),
    endpoint: nonEmpty.optional().describe('Override the service endpoint (tests, private endpoints)'),
  })
  .strict();

export const ibmcloudTargetSchema = z
  .object({
    kind: z.literal('ibmcloud'),
    ...targetBase,
    regions: z.array(nonEmpty).min(1).describe('VPC regions to create the image in, e.g. [us-east, eu-de]'),
    resource_group: nonEmpty.describe('Resource group id (or name) for the images'),
    operating_system: nonEmpty.describe('VPC operating-system name, e.g. red-9-s390x-byol'),
    cos: z
      .object({ bucket: nonEmpty, region: nonEmpty, endpoint: nonEmpty.optional(), instance_crn: nonEmpty.optional() })
      .strict()
      .describe('Cloud Object Storage bucket the qcow2 is staged in'),
    endpoints: z
      .object({ iam: nonEmpty.optional(), vpc: nonEmpty.optional(), resource_manager: nonEmpty.optional() })
      .strict()
      .optional(),
  })
  .strict();

export const libvirtTargetSchema = z
  .object({
    kind: z.literal('libvirt'),
    ...targetBase,
    hypervisors: z
      .array(
        z
          .object({
            uri: hypervisorUri,
            arch: archSchema.describe('Arch of the hypervisor: it runs guests of this arch only'),
            identity_file: identityFile.optional(),
            known_hosts: knownHostsFile.optional(),
            host_key: hostKey.optional(),
          })
          .strict(),
      )
      .min(1),
    pool: nonEmpty.default('images').describe('libvirt storage pool'),
    image_type: z.enum(['qcow2', 'raw']).default('qcow2').describe('Which bib output to upload'),
    convert_to_raw: z.boolean().default(true).describe('Convert qcow2 to sparse raw before upload'),
  })
  .strict();

export const openstackTargetSchema = z
  .object({
    kind: z.literal('openstack'),
    ...targetBase,
    cloud: nonEmpty.optional().describe('clouds.yaml entry (default: OS_CLOUD, then OS_* variables)'),
    image_type: z.enum(['qcow2', 'raw']).default('qcow2'),
    disk_format: z.enum(['qcow2', 'raw']).optional().describe('Glance disk_format (default: image_type)'),
    visibility: z.enum(['private', 'shared', 'community', 'public']).default('private'),
    properties: z.record(z.string(), z.string()).default({}),
    os_distro: nonEmpty.optional(),
  })
  .strict();

export const targetSchema = z.discriminatedUnion('kind', [
  awsTargetSchema,
  ibmcloudTargetSchema,
  libvirtTargetSchema,
  openstackTargetSchema,
]);
export type Target = z.infer<typeof targetSchema>;
export type TargetKind = Target['kind'];

export const archConfigSchema = z
  .object({
    types: z.array(imageTypeSchema).min(1).optional().describe('bib --type list; overrides what targets imply'),
    targets: z.array(targetSchema).default([]),
  })
  .strict();

export const settingsSchema = z
  .object({
    builds_dir: nonEmpty.default('builds').describe('Where builds/<id>/<arch>/ artifacts and records go'),
    keep_remote: z.boolean().default(false).describe('Keep remote images and outputs after fetch (debugging)'),
    connect_timeout_s: z.number().positive().default(20),
    keepalive_s: z.number().positive().default(15),
    bulk_transfer: z
      .enum(['auto', 'openssh', 'ssh2'])
      .default('auto')
      .describe("How image data travels from workers: auto (OpenSSH's ssh client when installed, else ssh2), openssh, or ssh2 (the farm's own connection)"),
  })
  .strict();

// --- `farm serve`: what it watches, when it rebuilds, who may trigger it and whom it tells.
// Secrets are never values here: *_env keys name the environment variables that hold them.

const duration = z
  .string()
  .regex(/^\d+(\.\d+)?(ms|s|m|h|d|w)$/, 'a duration: a number and a unit (ms, s, m, h, d, w), e.g. 60s, 12h or 7d');
const envName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'the name of an environment variable, e.g. FARM_TOKEN (never the secret itself)');
const httpUrl = z.string().regex(/^https?:\/\/\S+$/, 'an http:// or https:// URL');

export const cronPatternSchema = z
  .string()
  .trim()
  .min(1)
  .refine((p) => {
    try {
      new Cron(p, { paused: true }).stop();
      return true;
    } catch {
      return false;
    }
  }, 'a cron pattern: minute hour day-of-month month day-of-week, e.g. "0 3 * * 0" (Sundays 03:00)');

export const gitSourceSchema = z
  .object({
    url: ruled(nonEmpty.regex(/^[^-]/, 'a repository URL or path, not an option'), gitUrlRule)
      .describe('Repository URL (https://, ssh://, git@host:path or a local path) cloned into builds_dir/.service/git'),
    branch: nonEmpty.default('main').describe('Branch to build'),
    containerfile: ruled(nonEmpty, repoPathRule).default('Containerfile').describe('Containerfile path inside the repository'),
    context: ruled(nonEmpty, repoPathRule).default('.').describe('Build context directory inside the repository'),
  })
  .strict();

export const serviceSchema = z
  .object({
    listen: nonEmpty
      .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'host:port, e.g. 127.0.0.1:8080')
      .default('127.0.0.1:8080')
      .describe('Address of the status page and API (host:port); put a TLS proxy in front to expose it'),
    public_url: z
      .string()
      .regex(/^https?:\/\/(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?\/?$/, 'an origin: http:// or https://, a host name and an optional port, nothing after, e.g. https://farm.example.org')
      .optional()
      .describe('The address clients and forges use (behind a proxy): its host is answered besides the listen host, localhost and IP addresses; status links use it'),
    source: z
      .object({
        git: gitSourceSchema.optional().describe("Build from this git branch instead of the inventory's source"),
        poll_interval: duration.default('60s').describe('How often the source is checked for changes'),
        watch: z.boolean().default(true).describe('Build when the source changes (the build key decides)'),
      })
      .strict()
      .default({ poll_interval: '60s', watch: true })
      .describe("What is built: the inventory's own source (default) or a git branch"),
    schedule: cronPatternSchema.optional().describe('Rebuild on this cron schedule, e.g. "0 3 * * 0" (weekly), to pick up base image updates'),
    inactivity: duration.optional().describe('Rebuild when the last successful build is older than this, e.g. 7d'),
    debounce: duration.default('2s').describe('Triggers arriving this close together make one build'),
    token_env: envName.default('FARM_TOKEN').describe('Environment variable holding the bearer token for POST /api/builds'),
    webhooks: z
      .object({
        github_secret_env: envName.optional().describe('Environment variable holding the GitHub webhook secret (X-Hub-Signature-256)'),
        gitlab_token_env: envName.optional().describe('Environment variable holding the GitLab webhook token (X-Gitlab-Token)'),
      })
      .strict()
      .default({}),
    notify: z
      .object({
        webhook: httpUrl.optional().describe('POST the build result (JSON) to this URL'),
        webhook_env: envName.optional().describe('Environment variable holding the webhook URL, for URLs that carry a secret'),
        command: z.array(nonEmpty).min(1).optional().describe('Run this command (argv, no shell) with the build result (JSON) on stdin'),
        env: z
          .array(envName)
          .default([])
          .describe("Environment variables passed to the command besides PATH, HOME and LANG (it never gets the service's cloud credentials)"),
      })
      .strict()
      .default({ env: [] }),
    on_shutdown: z.enum(['cancel', 'finish']).default('cancel').describe('On SIGTERM: cancel the running build, or let it finish'),
    arches: z.array(archSchema).min(1).optional().describe('Arches the service builds (default: every arch of the inventory)'),
  })
  .strict();

export const inventorySchema = z
  .object({
    version: z.literal(1).describe('Inventory format version'),
    source: sourceSchema.describe('What to build: the shared Containerfile and its context'),
    builder: builderSchema.default(builderSchema.parse({})).describe('How bootc-image-builder runs on the workers'),
    naming: namingSchema.default(namingSchema.parse({})).describe('How images are named'),
    settings: settingsSchema.default(settingsSchema.parse({})).describe('Coordinator settings'),
    workers: z.array(workerSchema).min(1).describe('Native build hosts reached over SSH, at least one per arch to build'),
    arches: z
      .partialRecord(archSchema, archConfigSchema)
      .default({})
      .describe('Per-arch image types and upload targets; an arch without an entry builds the default types'),
    service: serviceSchema.optional().describe('`farm serve`: triggers, schedule, webhooks, notifications'),
  })
  .strict();

export type Inventory = z.infer<typeof inventorySchema>;
export type Worker = z.infer<typeof workerSchema>;
export type ServiceConfig = z.infer<typeof serviceSchema>;
export type ArchConfig = z.infer<typeof archConfigSchema>;
export type AwsTarget = z.infer<typeof awsTargetSchema>;
export type IbmCloudTarget = z.infer<typeof ibmcloudTargetSchema>;
export type LibvirtTarget = z.infer<typeof libvirtTargetSchema>;
export type OpenStackTarget = z.infer<typeof openstackTargetSchema>;

/** Arches each target kind can take (AWS: x86_64/arm64 AMIs; IBM VPC: amd64 and s390x images). */
export const TARGET_ARCHES: Record<TargetKind, readonly string[]> = {
  aws: ['x86_64', 'aarch64'],
  ibmcloud: ['x86_64', 's390x'],
  libvirt: ARCHES,
  openstack: ARCHES,
};

/** The loaded inventory with paths resolved to absolute ones. */
export interface LoadedInventory {
  file: string; // absolute path of the inventory file
  dir: string; // its directory, the base of relative paths
  inventory: Inventory;
}
