// The resalloc provider, through resalloc's client contract (as Copr's Makefile and backend use it):
//   resalloc [--connection URL] ticket --tag T [--tag T2...]   prints the ticket id
//   resalloc [--connection URL] ticket-wait ID                 blocks, then prints the data
//   resalloc [--connection URL] ticket-close ID
// ticket-wait has no timeout of its own and reports no failure, so the farm bounds it; a ticket
// that timed out, failed or was cancelled is closed before the error is thrown. The `command`
// provider is the same contract with the user's own two commands.

import { FarmError } from '../../src/core/errors.ts';
import { run, start, stderrTail, howItEnded } from '../../src/core/process.ts';
import { parseResourceData } from './data.ts';
import type { Allocation, PoolEndpoint, PoolProvider } from './types.ts';

/** How the VM is reached once the allocator names its host. */
export interface ReachSettings {
  user: string;
  port: number;
  known_hosts?: string | undefined;
  identity_file?: string | undefined;
}

export interface ResallocSettings extends ReachSettings {
  /** The client's argv (default ["resalloc"]). */
  command: readonly string[];
  connection?: string | undefined;
  tags: readonly string[];
  /** Longest wait for ticket-wait (s). */
  wait_timeout_s: number;
  /** Environment names passed to the client besides the base ones. */
  pass_env?: readonly string[];
}

const CLOSE_TIMEOUT_MS = 120_000;

export class ResallocProvider implements PoolProvider {
  readonly provider = 'resalloc';
  constructor(
    readonly pool: string,
    private readonly s: ResallocSettings,
  ) {}

  private argv(...rest: string[]): string[] {
    return [...this.s.command, ...(this.s.connection ? ['--connection', this.s.connection] : []), ...rest];
  }

  private what(id?: string): string {
    return `resalloc ticket${id ? ` ${id}` : ''} (tags ${this.s.tags.join(', ')}) of pool ${this.pool}`;
  }

  async allocate(signal: AbortSignal): Promise<Allocation> {
    const requestedAt = Date.now();
    const ticket = await run(this.argv('ticket', ...this.s.tags.flatMap((t) => ['--tag', t])), {
      signal,
      timeoutMs: 60_000,
      pass: this.s.pass_env ?? [],
      what: this.what(),
      code: 'WORKER_UNHEALTHY',
    });
    const id = ticket.stdout.trim();
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) {
      throw new FarmError('WORKER_UNHEALTHY', `${this.what()}: \`resalloc ticket\` printed ${JSON.stringify(id.slice(0, 80))}, not a ticket id`);
    }
    try {
      const r = await start(this.argv('ticket-wait', id), { signal, timeoutMs: this.s.wait_timeout_s * 1000, pass: this.s.pass_env ?? [] }).done;
      if (r.timedOut) {
        throw new FarmError('WORKER_UNHEALTHY', `${this.what(id)} not ready after ${this.s.wait_timeout_s} s; the ticket was closed`, {
          hint: 'the pool may be empty or slow: raise wait_timeout_s, or check the resalloc server',
        });
      }
      if (r.code !== 0) {
        const tail = stderrTail(r.stderr);
        throw new FarmError('WORKER_UNHEALTHY', `${this.what(id)}: ticket-wait ${howItEnded(r)}${tail ? `: ${tail}` : ''}`);
      }
      const data = parseResourceData(r.stdout, this.what(id));
      return { pool: this.pool, provider: this.provider, id, data: r.stdout.trim(), endpoint: reach(data, this.s), requestedAt, readyAt: Date.now() };
    } catch (err) {
      // Whatever stopped the wait, the ticket is not left open.
      await this.release({ id, data: '' }).catch(() => undefined);
      throw err;
    }
  }

  async release(a: Pick<Allocation, 'id' | 'data'>): Promise<void> {
    await run(this.argv('ticket-close', a.id), { timeoutMs: CLOSE_TIMEOUT_MS, pass: this.s.pass_env ?? [], what: `resalloc ticket-close ${a.id}`, code: 'WORKER_UNHEALTHY' });
  }
}

export interface CommandSettings extends ReachSettings {
  /** argv that takes a VM and prints its data (one host line, or YAML with host, ssh_port, id). */
  allocate: readonly string[];
  /** argv that gives it back; gets the id as its last argument and the data on stdin. */
  release: readonly string[];
  timeout_s: number;
  pass_env?: readonly string[];
}

export class CommandProvider implements PoolProvider {
  readonly provider = 'command';
  constructor(
    readonly pool: string,
    private readonly s: CommandSettings,
  ) {}

  async allocate(signal: AbortSignal): Promise<Allocation> {
    const requestedAt = Date.now();
    const what = `allocate command of pool ${this.pool} (${this.s.allocate[0]})`;
    const r = await run(this.s.allocate, { signal, timeoutMs: this.s.timeout_s * 1000, pass: this.s.pass_env ?? [], what, code: 'WORKER_UNHEALTHY' });
    const data = r.stdout.trim();
    const id = idOf(data);
    try {
      const parsed = parseResourceData(data, what);
      return { pool: this.pool, provider: this.provider, id: id ?? parsed.host, data, endpoint: reach(parsed, this.s), requestedAt, readyAt: Date.now() };
    } catch (err) {
      await this.release({ id: id ?? '', data }).catch(() => undefined);
      throw err;
    }
  }

  async release(a: Pick<Allocation, 'id' | 'data'>): Promise<void> {
    await run([...this.s.release, a.id], {
      input: a.data,
      timeoutMs: CLOSE_TIMEOUT_MS,
      pass: this.s.pass_env ?? [],
      env: { FARM_POOL: this.pool, FARM_POOL_ID: a.id },
      what: `release command of pool ${this.pool} (${this.s.release[0]})`,
      code: 'WORKER_UNHEALTHY',
    });
  }
}

/** The `id:` line of YAML data, if any (the command provider's own ticket id). */
function idOf(data: string): string | undefined {
  const m = /^id:\s*["']?([A-Za-z0-9._:-]{1,128})["']?\s*$/m.exec(data);
  return data.startsWith('---') && m ? m[1] : undefined;
}

function reach(d: { host: string; port?: number | undefined }, s: ReachSettings): PoolEndpoint {
  return { host: d.host, port: d.port ?? s.port, user: s.user, known_hosts: s.known_hosts, identity_file: s.identity_file };
}
