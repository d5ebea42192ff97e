// The hosts workers/ reaches, in its own terms. The coordinator maps the inventory's workers to
// these (src/inventory/worker-endpoint.ts); workers/ never sees the inventory. Field names follow
// the inventory's, so the messages that name a setting (host_key, podman_socket) stay true.

import type { Arch } from '../src/core/arch.ts';

/** An SSH endpoint: where to connect, as whom, and how its host key is verified. */
export interface SshEndpoint {
  /** For messages and `farm workers trust <name>`. */
  name: string;
  host: string;
  port: number;
  user: string;
  /** Private key file (absolute); without it, ssh-agent. */
  identity_file?: string | undefined;
  /** known_hosts file (default ~/.ssh/known_hosts). */
  known_hosts?: string | undefined;
  /** Pinned host key fingerprint (SHA256:...); wins over known_hosts. */
  host_key?: string | undefined;
}

/** A build host: an SSH endpoint, its native arch and where podman and bib work on it. */
export interface WorkerEndpoint extends SshEndpoint {
  arch: Arch;
  podman_socket: string;
  storage: string;
  output_dir: string;
  /** Free space (GiB) required before a build starts. */
  min_free_gib: { storage: number; output: number };
  /** bib's caches kept across builds (osbuild store and rpm metadata), trimmed over max_gib. */
  cache?: { dir: string; max_gib: number } | undefined;
}
