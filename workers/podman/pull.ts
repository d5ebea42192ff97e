// The builder image's pull policy, as podman run --pull=always|missing|never|newer.

import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { FarmError } from '../../src/core/errors.ts';
import { followJsonStream } from './json-stream.ts';

export async function imagePresent(docker: Docker, ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

export async function ensureBuilderImage(
  docker: Docker,
  ref: string,
  policy: 'always' | 'missing' | 'never' | 'newer',
  signal: AbortSignal,
  onLine: (line: string) => void,
): Promise<void> {
  const present = await imagePresent(docker, ref);
  if (policy === 'never' || (policy === 'missing' && present)) {
    if (!present) {
      throw new FarmError('BUILD', `builder image ${ref} is not on the worker and pull is 'never'`, {
        hint: 'load it on the worker (podman pull/load) or set builder.pull to missing or newer',
      });
    }
    return;
  }
  try {
    onLine(`pulling ${ref}`);
    const stream = (await docker.pull(ref, { abortSignal: signal } as object)) as Readable;
    await followJsonStream(stream, signal, (msg) => {
      if (msg.error) throw new Error(String(msg.error));
    });
  } catch (err) {
    if (signal.aborted) throw new FarmError('ABORTED', 'cancelled');
    // 'newer' keeps a present image when the registry cannot be reached, as podman does.
    if (policy === 'newer' && present) {
      onLine(`warning: could not check for a newer ${ref} (${(err as Error).message}); using the local one`);
      return;
    }
    throw new FarmError('BUILD', `cannot pull builder image ${ref}: ${(err as Error).message}`, {
      hint: 'check the worker reaches the registry, or pre-load the image and set builder.pull: never',
    });
  }
}

/** Registry credentials for one pull: sent in the request's X-Registry-Auth header only. */
export interface PullAuth {
  username: string;
  password: string;
  serveraddress: string;
}

/**
 * Pulls `ref` (a repository by digest) for a build. Resolves to whether this pull brought it
 * (false: it was there already, so cleanup leaves it). The credentials travel in the request's
 * X-Registry-Auth header, never in argv, a file or a log line. tlsVerify false uses the libpod
 * endpoint, which honours it (the compat one always verifies).
 */
export async function pullImage(
  docker: Docker,
  ref: string,
  opts: { auth?: PullAuth | undefined; tlsVerify: boolean; signal: AbortSignal; onLine: (line: string) => void },
): Promise<boolean> {
  if (await imagePresent(docker, ref)) {
    opts.onLine(`${ref} is on the worker already`);
    return false;
  }
  opts.onLine(`pulling ${ref}`);
  try {
    const stream = opts.tlsVerify
      ? ((await docker.createImage({ fromImage: ref, abortSignal: opts.signal, ...(opts.auth ? { authconfig: opts.auth } : {}) } as object)) as Readable)
      : await new Promise<Readable>((resolve, reject) => {
          docker.modem.dial(
            {
              path: '/libpod/images/pull?',
              method: 'POST',
              options: { reference: ref, tlsVerify: false, quiet: false },
              ...(opts.auth ? { authconfig: opts.auth } : {}),
              abortSignal: opts.signal,
              isStream: true,
              statusCodes: { 200: true, 400: 'bad parameter', 500: 'server error' },
            } as unknown as Parameters<typeof docker.modem.dial>[0],
            (err: Error | null, data?: unknown) => (err ? reject(err) : resolve(data as Readable)),
          );
        });
    await followJsonStream(stream, opts.signal, (msg) => {
      if (msg.error) throw new Error(String(msg.error));
    });
  } catch (err) {
    if (opts.signal.aborted) throw new FarmError('ABORTED', 'cancelled');
    throw new FarmError('BUILD', `cannot pull ${ref}: ${(err as Error).message}`, {
      hint: 'check the worker reaches the registry and trusts its CA (/etc/containers/certs.d/HOST:PORT/ca.crt), and the credentials in the auth file',
    });
  }
  if (!(await imagePresent(docker, ref))) throw new FarmError('BUILD', `podman reported pulling ${ref}, but the worker does not have it`);
  return true;
}
