// Image digests for the build key, asked of a worker's podman: the first worker (in inventory
// order, among the arches being built) that connects and whose podman answers. Every failure
// resolves to undefined, so an unreachable farm leaves the key computable from files alone.

import type Docker from 'dockerode';
import type { Arch } from '../core/arch.ts';
import { errorMessage } from '../core/errors.ts';
import type { LoadedInventory, Worker } from '../inventory/schema.ts';
import { connectWorker } from '../../workers/ssh/session.ts';
import { podmanClient } from '../../workers/podman/client.ts';
import type { WorkerTransport } from '../../workers/transport.ts';

export type Inspect = (ref: string) => Promise<string | undefined>;

export interface WorkerInspector {
  inspect: Inspect;
  /** The worker asked, once one answered. */
  readonly worker: string | undefined;
  /** Why digests could not be resolved (unreachable workers, podman errors). */
  readonly problems: string[];
  close(): Promise<void>;
}

/** The repository part of a reference: no tag, no digest. */
export function repository(ref: string): string {
  const noDigest = ref.split('@')[0]!;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

/** The identity of an inspected image: its registry digest under the ref's repository, else its id. */
export function imageIdentity(ref: string, info: { Id: string; RepoDigests?: string[] | null }): string {
  const repo = repository(ref);
  const digests = [...(info.RepoDigests ?? [])].sort();
  const match = digests.find((d) => repository(d) === repo || repository(d).endsWith('/' + repo));
  return match ?? digests[0] ?? info.Id;
}

function within<T>(promise: Promise<T>, ms: number, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer in ${ms / 1000} s`)), ms);
    const onAbort = () => reject(new Error('cancelled'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    });
  });
}

export function workerInspector(loaded: LoadedInventory, opts: { signal: AbortSignal; arches?: readonly Arch[] }): WorkerInspector {
  const inv = loaded.inventory;
  const s = inv.settings;
  const timeoutMs = s.connect_timeout_s * 1000;
  const preferred = opts.arches?.length ? inv.workers.filter((w) => opts.arches!.includes(w.arch)) : [];
  const candidates: Worker[] = preferred.length ? preferred : inv.workers;
  const problems: string[] = [];
  let chosen: { worker: Worker; transport: WorkerTransport; docker: Docker } | undefined;
  let connecting: Promise<typeof chosen> | undefined;

  const connect = async (): Promise<typeof chosen> => {
    for (const worker of candidates) {
      if (opts.signal.aborted) return undefined;
      let transport: WorkerTransport | undefined;
      try {
        transport = await connectWorker(worker, { signal: opts.signal, connectTimeoutMs: timeoutMs, keepaliveIntervalMs: s.keepalive_s * 1000 });
        const docker = podmanClient(transport);
        await within(docker.ping(), timeoutMs, opts.signal);
        chosen = { worker, transport, docker };
        return chosen;
      } catch (err) {
        problems.push(`${worker.name}: ${errorMessage(err)}`);
        await transport?.close().catch(() => undefined);
      }
    }
    return undefined;
  };

  return {
    get worker() {
      return chosen?.worker.name;
    },
    problems,
    async inspect(ref) {
      connecting ??= connect();
      const c = await connecting;
      if (!c) return undefined;
      try {
        const info = await within(c.docker.getImage(ref).inspect(), timeoutMs, opts.signal);
        return imageIdentity(ref, info);
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        problems.push(status === 404 ? `${ref} is not on ${c.worker.name}` : `${ref} on ${c.worker.name}: ${errorMessage(err)}`);
        return undefined;
      }
    },
    async close() {
      await connecting?.catch(() => undefined);
      await chosen?.transport.close().catch(() => undefined);
    },
  };
}
