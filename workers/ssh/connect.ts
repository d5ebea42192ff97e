// Connecting to a worker: the ssh2 configuration (ciphers, keepalives, host key algorithms), one
// attempt with the host key checked before authentication, the pinned-key retry, and the
// OpenSSH client set up for bulk streams with exactly the key this connection verified.

import { Client, type CipherAlgorithm, type ConnectConfig, type ServerHostKeyAlgorithm } from 'ssh2';
import { FarmError, errorMessage, throwIfAborted } from '../../src/core/errors.ts';
import {
  ACCEPTED_HOST_KEY_ALGORITHMS,
  checkHostKey,
  findPinnedKey,
  hostKeyAlgorithms,
  loadHostKeyPolicy,
  type HostKeyCheck,
  type HostKeyPolicy,
} from '../../src/core/hostkeys.ts';
import type { WorkerEndpoint as Worker } from '../endpoint.ts';
import { loadAuth, type Auth } from './auth.ts';
import { KEEPALIVE_COUNT_MAX, connectError, hostKeyError, who } from './errors.ts';
import { OpenSshBulk, findSshClient, type BulkMode } from './openssh.ts';

export interface ConnectOptions {
  signal?: AbortSignal;
  /** Limit for TCP connect + key exchange + authentication (default 20 s). */
  connectTimeoutMs?: number;
  /** SSH-level keepalive period (default 15 s); 4 unanswered keepalives drop the connection. */
  keepaliveIntervalMs?: number;
  /** Concurrent exec/spawn channels (default 8; OpenSSH's MaxSessions defaults to 10). */
  maxChannels?: number;
  /** Cipher preference (default: AES-GCM first, see CIPHERS). */
  ciphers?: CipherAlgorithm[];
  /** How bulk streams (the transport's `bulk`) travel (default auto: OpenSSH's client if installed,
   *  see openssh.ts; ssh2: always this connection). */
  bulkTransfer?: BulkMode;
  log?: (line: string) => void;
}

// AES-GCM runs in OpenSSL (AES-NI, PCLMUL) through Node's crypto and needs no separate MAC;
// measured on the lab it moves bulk data faster than chacha20-poly1305 (see test/bench).
export const CIPHERS: CipherAlgorithm[] = [
  'aes128-gcm@openssh.com',
  'aes256-gcm@openssh.com',
  'chacha20-poly1305@openssh.com',
  'aes128-ctr',
  'aes256-ctr',
];

export interface Connected {
  auth: Auth;
  policy: HostKeyPolicy;
  client: Client;
  check: HostKeyCheck | undefined;
  negotiated: { cipher: string; serverHostKey: string };
}

/** One connection attempt: TCP, key exchange with the host key checked, authentication. */
function attemptConnect(
  worker: Worker,
  policy: HostKeyPolicy,
  auth: Auth,
  serverHostKey: ServerHostKeyAlgorithm[] | undefined,
  options: ConnectOptions,
): Promise<Connected> {
  const { signal, connectTimeoutMs = 20_000, keepaliveIntervalMs = 15_000 } = options;
  const client = new Client();
  let check: HostKeyCheck | undefined;
  let negotiated = { cipher: '', serverHostKey: '' };
  const config: ConnectConfig = {
    host: worker.host,
    port: worker.port,
    username: worker.user,
    readyTimeout: connectTimeoutMs,
    keepaliveInterval: keepaliveIntervalMs,
    keepaliveCountMax: KEEPALIVE_COUNT_MAX,
    algorithms: { cipher: options.ciphers ?? CIPHERS, serverHostKey: serverHostKey ?? [...ACCEPTED_HOST_KEY_ALGORITHMS] },
    hostVerifier: (key: Buffer) => {
      check = checkHostKey(policy, key);
      return check.status === 'ok';
    },
    ...('privateKey' in auth ? { privateKey: auth.privateKey } : { agent: auth.agent }),
  };

  return new Promise<Connected>((resolve, reject) => {
    let settled = false;
    const fail = (err: FarmError) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      client.on('error', () => {}); // the socket may still report errors while being torn down
      client.destroy();
      reject(err);
    };
    const onAbort = () => fail(new FarmError('ABORTED', `cancelled while connecting to ${worker.name}`));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    client.once('handshake', (n) => {
      negotiated = { cipher: n.cs.cipher, serverHostKey: n.serverHostKey };
    });
    client.once('ready', () => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      resolve({ client, check, negotiated, auth, policy });
    });
    client.on('error', (err: Error & { level?: string }) => {
      if (settled) return; // after setup the transport owns connection errors
      if (check && check.status !== 'ok') return fail(hostKeyError(worker, policy, check)!);
      if (!check && serverHostKey && /host key/i.test(err.message) && err.level === 'handshake') {
        return fail(
          new FarmError(
            'HOST_KEY',
            `${who(worker)} offers none of the host key types recorded for it (${serverHostKey.join(', ')}): ${err.message}`,
            { hint: `if the host was reinstalled with other key types, verify its key out of band and run \`farm workers trust ${worker.name}\`` },
          ),
        );
      }
      fail(connectError(worker, auth, err, connectTimeoutMs));
    });
    client.once('close', () => fail(new FarmError('SSH', `cannot connect to worker ${who(worker)}: connection closed during setup`)));
    try {
      client.connect(config);
    } catch (err) {
      fail(new FarmError('SSH', `cannot connect to worker ${who(worker)}: ${errorMessage(err)}`, { cause: err }));
    }
  });
}

/** Opens a worker's connection: host key verified before authentication. A pin says nothing
 *  about the key type, and the server may have presented another of its keys: the pinned one is
 *  looked for among the other types before the farm refuses. Never prompts for anything. */
export async function openConnection(worker: Worker, options: ConnectOptions = {}): Promise<Connected> {
  const { signal } = options;
  throwIfAborted(signal);
  const policy: HostKeyPolicy = await loadHostKeyPolicy(worker);
  const auth = await loadAuth(worker);
  try {
    return await attemptConnect(worker, policy, auth, hostKeyAlgorithms(policy), options);
  } catch (err) {
    if (!(err instanceof FarmError && err.code === 'HOST_KEY' && policy.kind === 'pinned')) throw err;
    const search = await findPinnedKey(worker, policy.fingerprint, { signal }).catch((e: unknown) => {
      if (e instanceof FarmError && e.code === 'ABORTED') throw e;
      return undefined; // the host could not be asked: the refusal above stands
    });
    if (!search?.found) throw err;
    return attemptConnect(worker, policy, auth, search.found.algorithms, options);
  }
}

/** The OpenSSH client that carries bulk streams, if any; refuses `openssh` without one. */
export function bulkProgram(mode: BulkMode): string | undefined {
  if (mode === 'ssh2') return undefined;
  const program = findSshClient();
  if (!program && mode === 'openssh') {
    throw new FarmError('SSH', 'settings.bulk_transfer is openssh, but no ssh client is installed on this machine', {
      hint: 'install the OpenSSH client (Debian: apt-get install openssh-client), or set settings.bulk_transfer: auto',
    });
  }
  return program;
}

/** Sets up the OpenSSH client for bulk streams, trusting exactly the key this connection verified. */
export function bulkSetup(
  worker: Worker,
  auth: Auth,
  check: HostKeyCheck | undefined,
  program: string | undefined,
  options: ConnectOptions,
): (() => Promise<OpenSshBulk>) | undefined {
  if (!program || !check || check.status !== 'ok') return undefined;
  const presented = check.presented;
  return () =>
    OpenSshBulk.prepare(program, worker, presented, 'identity' in auth ? { identityFile: auth.identity } : { agent: auth.agent }, {
      ...(options.connectTimeoutMs ? { connectTimeoutS: options.connectTimeoutMs / 1000 } : {}),
      ...(options.keepaliveIntervalMs ? { keepaliveS: options.keepaliveIntervalMs / 1000 } : {}),
    });
}
