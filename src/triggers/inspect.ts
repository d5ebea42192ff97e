// Image digests for the build key, asked of a worker's podman: the first worker (in inventory
// order, among the arches being built) that connects and whose podman answers. Every failure
// resolves to undefined, so an unreachable farm leaves the key computable from files alone.

import type { Arch } from '../core/arch.ts';
import { errorMessage } from '../core/errors.ts';
import type { LoadedInventory, Worker } from '../inventory/schema.ts';
import { workerEndpoint } from '../inventory/worker-endpoint.ts';
import { openImageInspector, type ImageInspector } from '../../workers/podman/inspect.ts';

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

export function workerInspector(loaded: LoadedInventory, opts: { signal: AbortSignal; arches?: readonly Arch[] }): WorkerInspector {
  const inv = loaded.inventory;
  const s = inv.settings;
  const timeoutMs = s.connect_timeout_s * 1000;
  const preferred = opts.arches?.length ? inv.workers.filter((w) => opts.arches!.includes(w.arch)) : [];
  const candidates: Worker[] = preferred.length ? preferred : inv.workers;
  const problems: string[] = [];
  let chosen: ImageInspector | undefined;
  let connecting: Promise<typeof chosen> | undefined;

  const connect = async (): Promise<typeof chosen> => {
    for (const worker of candidates) {
      if (opts.signal.aborted) return undefined;
      try {
        chosen = await openImageInspector(workerEndpoint(worker), { signal: opts.signal, timeoutMs, keepaliveIntervalMs: s.keepalive_s * 1000 });
        return chosen;
      } catch (err) {
        problems.push(`${worker.name}: ${errorMessage(err)}`);
      }
    }
    return undefined;
  };

  return {
    get worker() {
      return chosen?.worker;
    },
    problems,
    async inspect(ref) {
      connecting ??= connect();
      const c = await connecting;
      if (!c) return undefined;
      try {
        const info = await c.inspect(ref);
        if (info) return imageIdentity(ref, info);
        problems.push(`${ref} is not on ${c.worker}`);
      } catch (err) {
        problems.push(`${ref} on ${c.worker}: ${errorMessage(err)}`);
      }
      return undefined;
    },
    async close() {
      await connecting?.catch(() => undefined);
      await chosen?.close().catch(() => undefined);
    },
  };
}
