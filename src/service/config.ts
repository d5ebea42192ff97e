// The service's settings: the inventory's `service:` section with defaults applied, durations in
// milliseconds and command-line overrides (--listen) on top.

import { join, resolve } from 'node:path';
import type { Arch } from '../core/arch.ts';
import { FarmError } from '../core/errors.ts';
import { serviceSchema, type LoadedInventory } from '../inventory/schema.ts';
import { parseDuration } from './duration.ts';

export type SourceConfig =
  | { kind: 'path'; containerfile: string; context: string }
  | { kind: 'git'; url: string; branch: string; containerfile: string; context: string }
  | { kind: 'image'; image: string; tlsVerify: boolean };

export interface ServiceSettings {
  listen: { host: string; port: number };
  /** service.public_url without a trailing slash. */
  publicUrl?: string;
  source: SourceConfig;
  watch: boolean;
  pollMs: number;
  schedule?: string;
  inactivityMs?: number;
  debounceMs: number;
  tokenEnv: string;
  githubSecretEnv?: string;
  gitlabTokenEnv?: string;
  notify: { webhook?: string; webhookEnv?: string; command?: string[]; env: string[] };
  onShutdown: 'cancel' | 'finish';
  arches?: Arch[];
  /** `farm prune` on a cron schedule; apply: act on the plan. */
  prune?: { schedule: string; apply: boolean };
  /** `farm workers sweep` on a cron schedule (default every 10 minutes when there are pools). */
  sweep?: { schedule: string };
  buildsDir: string;
  /** builds_dir/.service: the service's own state and its git work dir. */
  stateDir: string;
}

/** How often the service gives back pool VMs left behind, when the inventory has pools. */
export const DEFAULT_SWEEP = '*/10 * * * *';

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new FarmError('USAGE', `--listen ${text}: use host:port, e.g. 127.0.0.1:8080 (port 0 picks a free one)`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

export function serviceSettings(loaded: LoadedInventory, overrides: { listen?: string } = {}): ServiceSettings {
  const s = loaded.inventory.service ?? serviceSchema.parse({});
  const buildsDir = resolve(loaded.dir, loaded.inventory.settings.builds_dir);
  const git = s.source.git;
  return {
    listen: parseListen(overrides.listen ?? s.listen),
    ...(s.public_url ? { publicUrl: s.public_url.replace(/\/$/, '') } : {}),
    source: git
      ? { kind: 'git', url: git.url, branch: git.branch, containerfile: git.containerfile, context: git.context }
      : loaded.inventory.source.image
        ? { kind: 'image', image: loaded.inventory.source.image, tlsVerify: loaded.inventory.source.tls_verify ?? true }
        : { kind: 'path', containerfile: loaded.inventory.source.containerfile ?? '', context: loaded.inventory.source.context },
    watch: s.source.watch,
    pollMs: parseDuration(s.source.poll_interval),
    ...(s.schedule ? { schedule: s.schedule } : {}),
    ...(s.inactivity ? { inactivityMs: parseDuration(s.inactivity) } : {}),
    debounceMs: parseDuration(s.debounce),
    tokenEnv: s.token_env,
    ...(s.webhooks.github_secret_env ? { githubSecretEnv: s.webhooks.github_secret_env } : {}),
    ...(s.webhooks.gitlab_token_env ? { gitlabTokenEnv: s.webhooks.gitlab_token_env } : {}),
    notify: {
      ...(s.notify.webhook ? { webhook: s.notify.webhook } : {}),
      ...(s.notify.webhook_env ? { webhookEnv: s.notify.webhook_env } : {}),
      ...(s.notify.command ? { command: s.notify.command } : {}),
      env: s.notify.env,
    },
    onShutdown: s.on_shutdown,
    ...(s.arches ? { arches: s.arches } : {}),
    ...(s.prune ? { prune: { schedule: s.prune.schedule, apply: s.prune.apply } } : {}),
    ...(s.sweep ? { sweep: { schedule: s.sweep.schedule } } : loaded.inventory.pools.length ? { sweep: { schedule: DEFAULT_SWEEP } } : {}),
    buildsDir,
    stateDir: join(buildsDir, '.service'),
  };
}
