// Pool providers: where a build takes a VM it does not have (resalloc, the user's own commands,
// later clouds), and gives it back. The coordinator (src/pipeline/pools.ts) asks, records and
// releases; a provider only speaks to its allocator. Host keys: a provider either pins the key it
// injected (a VM the farm made) or names the known_hosts file that vouches for the host (a VM made
// by someone else): never accept-any.

/** Where a taken VM is reached over SSH. */
/** The EC2 provider's name (a constant so the coordinator need not spell a cloud's name). */
export const AWS_POOL_PROVIDER = 'aws' as const;

export interface PoolEndpoint {
  host: string;
  port: number;
  user: string;
  /** Pinned host key fingerprint (SHA256:...), for VMs whose key the farm injected. */
  host_key?: string | undefined;
  /** known_hosts file that vouches for the host (VMs the farm did not make). */
  known_hosts?: string | undefined;
  /** Client key for this VM (a fresh one per VM), else the pool's. */
  identity_file?: string | undefined;
}

/** One VM taken from a pool: what gives it back, and where it is. */
export interface Allocation {
  pool: string;
  provider: string;
  /** The allocator's id: a resalloc ticket, an instance id. */
  id: string;
  /** The allocator's own description of the resource (resalloc's data), for release and records. */
  data: string;
  endpoint: PoolEndpoint;
  /** When the request was made and when the VM was reachable (ms since epoch). */
  requestedAt: number;
  readyAt: number;
}

/** What the coordinator tells a provider about the request (for tags). */
export interface AllocateContext {
  buildId?: string | undefined;
}

export interface PoolProvider {
  readonly pool: string;
  readonly provider: string;
  /** Takes one VM; bounded; an abort gives back whatever was half-taken and throws ABORTED. */
  allocate(signal: AbortSignal, context?: AllocateContext): Promise<Allocation>;
  /** Gives a VM back; idempotent (a VM already gone is fine). Not cancellable on purpose: it runs
   *  in finally blocks after Ctrl-C. */
  release(allocation: Pick<Allocation, 'id' | 'data'>): Promise<void>;
  /** For `farm workers check`, without taking a VM: credentials, the base image; says what it found. */
  check?(): Promise<string>;
}
