// Pool VMs for one build: taken for the arches that need them (./scheduler.ts poolDemand), each
// recorded in the build's state as soon as it is taken, reached over SSH (bounded), prepared and
// probed like any worker, and given back at the end whatever happened: success, failure, Ctrl-C or
// SIGTERM (the caller's finally). A run killed outright leaves its records, which `farm workers
// sweep` reads.

import { hostname } from 'node:os';
import type { Arch } from '../core/arch.ts';
import { FarmError, errorMessage, isAbortError } from '../core/errors.ts';
import { sleep } from '../core/sleep.ts';
import { durationSeconds } from '../inventory/pool-schema.ts';
import type { Pool, Worker } from '../inventory/schema.ts';
import type { BuildRecord } from '../records/build-record.ts';
import type { Reporter } from '../ui/reporter.ts';
import { AwsProvider } from '../../workers/pools/aws.ts';
import { CommandProvider, ResallocProvider } from '../../workers/pools/resalloc.ts';
import { AWS_POOL_PROVIDER, type Allocation, type PoolProvider } from '../../workers/pools/types.ts';
import type { WorkerTransport } from '../../workers/transport.ts';

export function providerFor(pool: Pool): PoolProvider {
  const s = pool.settings;
  if (s.provider === AWS_POOL_PROVIDER) {
    const arch = pool.arch as 'x86_64' | 'aarch64'; // the schema allows aws for these two only
    return new AwsProvider(pool.name, {
      region: s.region, arch, image: s.image, instance_type: s.instance_type[arch]!, subnet: s.subnet, security_groups: s.security_groups,
      root_volume_gib: s.root_volume_gib, data_volume_gib: s.data_volume_gib, tags: s.tags, user: s.user, lifetime_s: durationSeconds(pool.lifetime),
      running_timeout_s: durationSeconds(s.running_timeout), ssh_timeout_s: durationSeconds(s.ssh_timeout),
    });
  }
  const reach = { user: s.user, port: s.port, known_hosts: s.known_hosts, identity_file: s.identity_file, pass_env: s.pass_env };
  if (s.provider === 'resalloc') {
    return new ResallocProvider(pool.name, { ...reach, command: s.command, connection: s.connection, tags: s.tags, wait_timeout_s: durationSeconds(s.wait_timeout) });
  }
  return new CommandProvider(pool.name, { ...reach, allocate: s.allocate, release: s.release, timeout_s: durationSeconds(s.timeout) });
}

/** The VM as a worker of the build: the pool's settings, the allocation's endpoint. */
export function poolWorker(pool: Pool, a: Allocation): Worker {
  return {
    name: `${pool.name}-${a.id}`.toLowerCase().replace(/[^a-z0-9._-]/g, '-'),
    host: a.endpoint.host,
    port: a.endpoint.port,
    user: a.endpoint.user,
    arch: pool.arch,
    identity_file: a.endpoint.identity_file,
    known_hosts: a.endpoint.known_hosts,
    host_key: a.endpoint.host_key,
    podman_socket: pool.podman_socket,
    storage: pool.storage,
    output_dir: pool.output_dir,
    max_builds: pool.max_builds,
    min_free_gib: { ...pool.min_free_gib },
    prepare: pool.prepare,
  };
}

interface Lease {
  pool: Pool;
  provider: PoolProvider;
  allocation: Allocation;
  worker: Worker;
  released?: Promise<void>;
}

/** The pool VMs of one build. */
export class PoolLeases {
  private readonly leases: Lease[] = [];
  private readonly held = new Map<string, number>();
  /** Seconds per VM: request to SSH-ready, end to given back (for `npm run bench` and the log). */
  readonly timings: Array<{ pool: string; provider: string; id: string; readySeconds: number; releaseSeconds?: number }> = [];

  constructor(
    private readonly store: BuildRecord,
    private readonly reporter: Reporter,
    private readonly providers: (pool: Pool) => PoolProvider = providerFor,
  ) {}

  /**
   * Takes one VM from the first pool of `pools` with room, reaches it (connect, retried while the
   * VM boots, bounded) and checks it (`check`: preparation and probe). A VM that fails any of it
   * is given back at once and the next pool is tried; undefined when none gave a usable VM.
   */
  async take(
    arch: Arch,
    pools: readonly Pool[],
    connect: (w: Worker, signal: AbortSignal) => Promise<WorkerTransport>,
    check: (w: Worker, t: WorkerTransport) => Promise<boolean>,
    signal: AbortSignal,
    sshWaitMs = 180_000,
  ): Promise<{ worker: Worker; transport: WorkerTransport } | undefined> {
    for (const pool of pools) {
      const plog = this.reporter.scoped(pool.name);
      const n = this.held.get(pool.name) ?? 0;
      if (n >= pool.max) continue;
      this.held.set(pool.name, n + 1);
      const provider = this.providers(pool);
      const requested = new Date();
      plog.info(`taking a ${arch} VM (${pool.settings.provider})`);
      let allocation: Allocation;
      try {
        allocation = await provider.allocate(signal, { buildId: this.store.buildId });
      } catch (err) {
        this.held.set(pool.name, (this.held.get(pool.name) ?? 1) - 1);
        if (signal.aborted || isAbortError(err)) throw new FarmError('ABORTED', 'cancelled');
        plog.warn(`no VM: ${errorMessage(err)}${err instanceof FarmError && err.hint ? ` (${err.hint})` : ''}`);
        continue;
      }
      const worker = poolWorker(pool, allocation);
      const lease: Lease = { pool, provider, allocation, worker };
      this.leases.push(lease);
      await this.store.poolAllocation({
        pool: pool.name,
        provider: provider.provider,
        arch,
        id: allocation.id,
        data: allocation.data,
        host: `${allocation.endpoint.host}:${allocation.endpoint.port}`,
        lifetime_s: durationSeconds(pool.lifetime),
        owner: { pid: process.pid, host: hostname() },
        at: { requested: requested.toISOString(), ready: new Date(allocation.readyAt).toISOString() },
      });
      plog.info(`${provider.provider} ${allocation.id}: ${allocation.endpoint.host}:${allocation.endpoint.port} after ${((allocation.readyAt - allocation.requestedAt) / 1000).toFixed(1)} s`);
      let transport: WorkerTransport | undefined;
      try {
        transport = await connectWhileBooting(worker, connect, signal, sshWaitMs);
        const readySeconds = (Date.now() - allocation.requestedAt) / 1000;
        this.timings.push({ pool: pool.name, provider: provider.provider, id: allocation.id, readySeconds });
        await this.store.poolAllocation({ pool: pool.name, id: allocation.id, at: { ssh: new Date().toISOString() } });
        plog.info(`${worker.name}: SSH ready ${readySeconds.toFixed(1)} s after the request`);
        if (await check(worker, transport)) return { worker, transport };
      } catch (err) {
        if (signal.aborted || isAbortError(err)) throw new FarmError('ABORTED', 'cancelled');
        plog.warn(`${worker.name} not usable: ${errorMessage(err)}${err instanceof FarmError && err.hint ? ` (${err.hint})` : ''}`);
      }
      await transport?.close().catch(() => undefined);
      await this.release(lease);
    }
    return undefined;
  }

  /** Gives one VM back (once), recording the outcome. */
  private release(lease: Lease): Promise<void> {
    lease.released ??= (async () => {
      const plog = this.reporter.scoped(lease.pool.name);
      const t0 = Date.now();
      const { allocation: a } = lease;
      try {
        await lease.provider.release(a);
        const secs = (Date.now() - t0) / 1000;
        const t = this.timings.find((x) => x.pool === lease.pool.name && x.id === a.id);
        if (t) t.releaseSeconds = secs;
        await this.store.poolAllocation({ pool: lease.pool.name, id: a.id, at: { released: new Date().toISOString() } }).catch(() => undefined);
        plog.info(`${lease.worker.name} given back (${lease.provider.provider} ${a.id}) in ${secs.toFixed(1)} s`);
      } catch (err) {
        await this.store.poolAllocation({ pool: lease.pool.name, id: a.id, releaseError: errorMessage(err) }).catch(() => undefined);
        plog.error(`could not give back ${lease.worker.name} (${lease.provider.provider} ${a.id}): ${errorMessage(err)}; \`farm workers sweep\` tries again`);
      } finally {
        this.held.set(lease.pool.name, (this.held.get(lease.pool.name) ?? 1) - 1);
      }
    })();
    return lease.released;
  }

  /** Gives every VM back; never throws (each failure is logged and recorded). */
  async releaseAll(): Promise<void> {
    await Promise.all(this.leases.map((l) => this.release(l)));
  }
}

/** Connects, trying again while the VM's sshd is not up yet; a host key mismatch is final. */
async function connectWhileBooting(
  worker: Worker,
  connect: (w: Worker, signal: AbortSignal) => Promise<WorkerTransport>,
  signal: AbortSignal,
  waitMs: number,
): Promise<WorkerTransport> {
  const deadline = Date.now() + waitMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await connect(worker, signal);
    } catch (err) {
      if (signal.aborted || isAbortError(err)) throw err;
      if (err instanceof FarmError && err.code === 'HOST_KEY') throw err;
      if (Date.now() + 2000 > deadline) {
        throw new FarmError('SSH', `${worker.name} (${worker.host}:${worker.port}) did not accept SSH within ${Math.round(waitMs / 1000)} s (${attempt} attempts): ${errorMessage(err)}`);
      }
      await sleep(Math.min(1000 * attempt, 5000), signal);
    }
  }
}
