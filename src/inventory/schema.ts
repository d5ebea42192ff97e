// The inventory: what to build (source, builder), where (workers) and where it goes (per-arch
// targets). Every object is strict, so a typo is an error instead of a silently ignored setting.
// Paths are relative to the inventory file's directory.

import { z } from 'zod';
import { Cron } from 'croner';
import { IMAGE_TYPES } from '../core/image-types.ts';
import { archSchema, hostKeyField, identityFileField, knownHostsField, nameField as name, nonEmpty } from '../core/fields.ts';
import { targetSchema } from '../targets.ts';
import { gitUrlRule, remotePathRule, repoPathRule, ruled } from './field-rules.ts';
import { smokeSchema } from './smoke-schema.ts';
import { releaseSchema, retentionSchema } from './lifecycle-schema.ts';
import { poolSchema, prepareSchema } from './pool-schema.ts';

export { archSchema };
export { targetSchema, type Target } from '../targets.ts';
export type { ImageType } from '../core/image-types.ts';

export const imageTypeSchema = z.enum(IMAGE_TYPES);

export const sourceSchema = z
  .object({
    containerfile: nonEmpty.optional().describe('Path of the shared Containerfile (or give image instead)'),
    image: nonEmpty
      .optional()
      .describe('A prebuilt multi-arch image (REGISTRY/REPO:TAG or @sha256:DIGEST) each worker pulls for its arch instead of building a Containerfile'),
    tls_verify: z.boolean().optional().describe('Verify the registry\'s TLS certificate for image (default true)'),
    context: nonEmpty.default('.').describe('Build context directory sent to each worker'),
    build_args: z.record(z.string(), z.string()).default({}).describe('podman build --build-arg values'),
    publish: z
      .object({
        image: nonEmpty.describe('Repository (REGISTRY/REPO, no tag) each arch\'s built image is pushed to, as <build id>-<arch>, and the manifest list as <build id>'),
        latest: z.boolean().default(false).describe('Tag the manifest list latest too'),
        partial: z.boolean().default(false).describe('Push the list of the arches that built when some failed (default: no list)'),
        tls_verify: z.boolean().default(true).describe("Verify the registry's TLS certificate"),
      })
      .strict()
      .optional()
      .describe('publish_image: push the built OCI images and a manifest list of them (Containerfile source only)'),
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

// Paths on the worker, not on this host: nothing to resolve them against, so they must be absolute.
const remotePath = ruled(nonEmpty.regex(/^\//, 'use an absolute path on the worker, e.g. /var/lib/farm/output'), remotePathRule);

export const workerSchema = z
  .object({
    name: name.describe('Worker name, unique in the inventory'),
    host: nonEmpty.describe('SSH host name or address'),
    port: z.number().int().min(1).max(65535).default(22).describe('SSH port'),
    user: nonEmpty.default('root').describe('SSH user; bib needs rootful podman'),
    arch: archSchema.describe('Native arch of the worker, as `uname -m` prints it'),
    identity_file: identityFileField.optional().describe('Private key file; without it, ssh-agent (SSH_AUTH_SOCK)'),
    known_hosts: knownHostsField.optional().describe('known_hosts file to verify the host key (default ~/.ssh/known_hosts)'),
    host_key: hostKeyField.optional().describe('Pinned host key fingerprint; takes precedence over known_hosts'),
    podman_socket: remotePath.default('/run/podman/podman.sock').describe('Podman API socket on the worker'),
    storage: remotePath.default('/var/lib/containers/storage').describe('Container storage on the worker'),
    output_dir: remotePath.default('/var/lib/farm/output').describe('Where bib writes outputs on the worker'),
    max_builds: z.number().int().min(1).default(1).describe('Concurrent builds on this worker'),
    min_free_gib: z
      .object({ storage: gib.default(10), output: gib.default(10) })
      .strict()
      .default({ storage: 10, output: 10 })
      .describe('Free space required before a build starts'),
    prepare: prepareSchema.optional().describe('Preparation before its first build (data volume, tmpfs sizes, podman socket, builder image)'),
    cache: z
      .object({
        dir: remotePath.default('/var/lib/farm/cache').describe("Where bib's osbuild store (store/) and rpm metadata (rpmmd/) persist"),
        max_gib: gib.default(20).describe('Trimmed (emptied) after a build when it holds more than this'),
      })
      .strict()
      .optional()
      .describe("bib's caches kept across builds on this (static) worker: --store and --rpmmd mounted from dir"),
  })
  .strict();

// --- targets: each kind's schema lives in its folder (uploaders/<kind>/schema.ts); src/targets.ts
// composes them, so `inventory check` covers them.

export const archConfigSchema = z
  .object({
    types: z.array(imageTypeSchema).min(1).optional().describe('bib --type list; overrides what targets imply'),
    targets: z.array(targetSchema).default([]),
    smoke: smokeSchema.optional().describe("This arch's smoke check: fields over the global smoke's, or false"),
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
    prune: z
      .object({
        schedule: cronPatternSchema.describe('Run `farm prune` on this cron schedule, e.g. "0 4 * * *"'),
        apply: z.boolean().default(false).describe('Act on the plan (like --yes); false only logs and shows the plan'),
      })
      .strict()
      .optional()
      .describe('`farm prune` on a schedule, with the inventory\'s retention policy'),
    sweep: z
      .object({ schedule: cronPatternSchema.default('*/10 * * * *').describe('Run `farm workers sweep` on this cron schedule') })
      .strict()
      .optional()
      .describe('Give back pool VMs earlier runs left (`farm workers sweep`); with pools it runs every 10 minutes unless set'),
  })
  .strict();

export const inventorySchema = z
  .object({
    version: z.literal(1).describe('Inventory format version'),
    source: sourceSchema.describe('What to build: the shared Containerfile and its context, or a prebuilt image'),
    builder: builderSchema.default(builderSchema.parse({})).describe('How bootc-image-builder runs on the workers'),
    naming: namingSchema.default(namingSchema.parse({})).describe('How images are named'),
    settings: settingsSchema.default(settingsSchema.parse({})).describe('Coordinator settings'),
    workers: z.array(workerSchema).default([]).describe('Native build hosts reached over SSH; with pools, an arch may have none'),
    pools: z.array(poolSchema).default([]).describe('VMs taken per build from an allocator (resalloc, a command), prepared and given back'),
    arches: z
      .partialRecord(archSchema, archConfigSchema)
      .default({})
      .describe('Per-arch image types and upload targets; an arch without an entry builds the default types'),
    service: serviceSchema.optional().describe('`farm serve`: triggers, schedule, webhooks, notifications'),
    smoke: smokeSchema.optional(),
    release: releaseSchema.optional().describe('`farm release`: the hook told the released images, and auto release'),
    retention: retentionSchema.optional().describe('`farm prune`: which images are deprecated, then deleted'),
  })
  .strict();

export type Inventory = z.infer<typeof inventorySchema>;
export type Worker = z.infer<typeof workerSchema>;
export type { Pool } from './pool-schema.ts';
export type ServiceConfig = z.infer<typeof serviceSchema>;
export type ArchConfig = z.infer<typeof archConfigSchema>;
/** The loaded inventory with paths resolved to absolute ones. */
export interface LoadedInventory {
  file: string; // absolute path of the inventory file
  dir: string; // its directory, the base of relative paths
  inventory: Inventory;
}
