// Podman's Docker-compatible API on the worker, reached through the SSH connection: each HTTP
// connection is a direct-streamlocal channel to the worker's podman socket, so no TCP port is ever
// opened on the worker. dockerode speaks the API; this module only supplies the connections.

import { Agent } from 'node:http';
import type { Duplex } from 'node:stream';
import Docker from 'dockerode';
import type { WorkerTransport } from '../transport.ts';

type Callback = (err: Error | null, socket?: Duplex) => void;

function noop(): void {}

/** An http.Agent whose connections are SSH channels to a unix socket on the worker. */
export class ForwardedSocketAgent extends Agent {
  constructor(private readonly open: () => Promise<Duplex>) {
    // One request per channel: channels are cheap on the existing connection, and podman's
    // long-lived streams (build, logs, wait) must not block other calls.
    super({ keepAlive: false });
  }

  // Node's Agent accepts an asynchronous createConnection through the callback.
  override createConnection(_options: unknown, callback: Callback): undefined {
    this.open().then((stream) => {
      // http.ClientRequest calls these socket methods; an SSH channel has none of them.
      const s = stream as Duplex & Record<string, unknown>;
      s.setKeepAlive = noop;
      s.setNoDelay = noop;
      s.setTimeout = noop;
      s.ref = noop;
      s.unref = noop;
      s.destroySoon = s.destroy;
      callback(null, stream);
    }, (err: Error) => callback(err));
    return undefined;
  }
}

/** The compat API version podman 4.x and 5.x serve. */
export const PODMAN_COMPAT_API = 'v1.41';

export function podmanClient(transport: WorkerTransport): Docker {
  const agent = new ForwardedSocketAgent(() => transport.openUnixSocket(transport.worker.podman_socket));
  return new Docker({
    protocol: 'http',
    host: 'podman', // never resolved: the agent supplies the connection
    port: 80,
    version: PODMAN_COMPAT_API,
    agent,
  } as Docker.DockerOptions);
}

/** Labels on every container and image the farm creates, so they can be found and removed. */
export const FARM_LABEL = 'io.farm.managed';

export function farmLabels(buildId: string, arch: string, worker: string): Record<string, string> {
  return { [FARM_LABEL]: 'true', 'io.farm.build-id': buildId, 'io.farm.arch': arch, 'io.farm.worker': worker };
}

/** Filters for the images one worker entry made in one build: its tagged image and the cached layers of each step. */
export function ownImagesFilter(labels: Record<string, string>): { label: string[] } {
  return { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) };
}
