// Pushes a built image from its worker to a registry through podman's libpod push endpoint
// (it takes a destination, so no extra tag is left on the worker, and honours tlsVerify).
// The credentials travel in the request's X-Registry-Auth header only, as for pullImage.

import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { FarmError } from '../../src/core/errors.ts';
import { followJsonStream } from './json-stream.ts';
import type { PullAuth } from './pull.ts';

export async function pushImage(
  docker: Docker,
  localRef: string,
  destination: string,
  opts: { auth?: PullAuth | undefined; tlsVerify: boolean; signal: AbortSignal; onLine: (line: string) => void },
): Promise<{ digest?: string | undefined }> {
  opts.onLine(`pushing ${localRef} to ${destination}`);
  let digest: string | undefined;
  try {
    const stream = await new Promise<Readable>((resolve, reject) => {
      docker.modem.dial(
        {
          path: `/libpod/images/${encodeURIComponent(localRef)}/push?`,
          method: 'POST',
          options: { destination, tlsVerify: opts.tlsVerify, quiet: false },
          ...(opts.auth ? { authconfig: opts.auth } : {}),
          abortSignal: opts.signal,
          isStream: true,
          statusCodes: { 200: true, 400: 'bad parameter', 404: 'no such image', 500: 'server error' },
        } as unknown as Parameters<typeof docker.modem.dial>[0],
        (err: Error | null, data?: unknown) => (err ? reject(err) : resolve(data as Readable)),
      );
    });
    await followJsonStream(stream, opts.signal, (msg) => {
      if (msg.error) throw new Error(String(msg.error));
      // podman >= 4.4 reports the pushed manifest's digest; the coordinator reads it from the registry anyway.
      if (typeof msg.manifestdigest === 'string') digest = msg.manifestdigest;
    });
  } catch (err) {
    if (opts.signal.aborted) throw new FarmError('ABORTED', 'cancelled');
    throw new FarmError('BUILD', `cannot push ${localRef} to ${destination}: ${(err as Error).message}`, {
      hint: 'check the worker reaches the registry and trusts its CA (/etc/containers/certs.d/HOST:PORT/ca.crt), and the credentials in the auth file',
    });
  }
  return { digest };
}
