// The inventory's worker as workers/ takes it (workers/endpoint.ts): only what reaching and using
// the host needs; scheduling settings (max_builds) stay with the coordinator.

import type { WorkerEndpoint } from '../../workers/endpoint.ts';
import type { Worker } from './schema.ts';

export function workerEndpoint(w: Worker): WorkerEndpoint {
  return {
    name: w.name,
    host: w.host,
    port: w.port,
    user: w.user,
    arch: w.arch,
    identity_file: w.identity_file,
    known_hosts: w.known_hosts,
    host_key: w.host_key,
    podman_socket: w.podman_socket,
    storage: w.storage,
    output_dir: w.output_dir,
    min_free_gib: { ...w.min_free_gib },
    ...(w.cache ? { cache: { ...w.cache } } : {}),
  };
}
