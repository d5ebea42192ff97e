// Asking a worker's podman about images (the build key's digests): connect over SSH, check that
// podman answers, inspect references. Which worker to ask and what a digest means for the key is
// the coordinator's business (src/triggers/inspect.ts).

import type Docker from 'dockerode';
import type { WorkerEndpoint } from '../endpoint.ts';
import { connectWorker, type ConnectOptions } from '../ssh/session.ts';
import type { WorkerTransport } from '../transport.ts';
import { podmanClient } from './client.ts';

/** What the build key needs of an image. */
export interface ImageInfo {
  Id: string;
  RepoDigests?: string[] | null;
}

export interface ImageInspector {
  readonly worker: string;
  /** The image's info; undefined when the worker has no such image. */
  inspect(ref: string): Promise<ImageInfo | undefined>;
  close(): Promise<void>;
}

/** `promise`, or a rejection after `ms` or when `signal` fires: a podman that never answers must
 *  not hold the key (and the build behind it). */
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

/** Connects to the worker and checks its podman answers within `timeoutMs`; throws otherwise. */
export async function openImageInspector(
  worker: WorkerEndpoint,
  opts: Omit<ConnectOptions, 'signal' | 'connectTimeoutMs'> & { signal: AbortSignal; timeoutMs: number },
): Promise<ImageInspector> {
  const { signal, timeoutMs, ...connect } = opts;
  let transport: WorkerTransport | undefined;
  try {
    transport = await connectWorker(worker, { ...connect, signal, connectTimeoutMs: timeoutMs });
    const docker: Docker = podmanClient(transport);
    await within(docker.ping(), timeoutMs, signal);
    const t = transport;
    return {
      worker: worker.name,
      async inspect(ref) {
        try {
          return (await within(docker.getImage(ref).inspect(), timeoutMs, signal)) as ImageInfo;
        } catch (err) {
          if ((err as { statusCode?: number }).statusCode === 404) return undefined;
          throw err;
        }
      },
      close: () => t.close(),
    };
  } catch (err) {
    await transport?.close().catch(() => undefined);
    throw err;
  }
}
