// Bulk data over the OpenSSH client. Node's ssh2 decrypts every packet on the event loop
// (~2 CPU-s per GiB on the lab against ~0.9 for OpenSSH's client, see test/bench/fetch.bench.ts),
// and that loop also hashes and writes what arrives. For streams of image data the coordinator
// runs `ssh` as a child process instead: decryption moves to its own process and the loop only
// reads a pipe. Everything else (commands, podman's socket) stays on the one ssh2 connection.
//
// The child trusts exactly the host key that the ssh2 connection verified (written to a private
// known_hosts under an alias, StrictHostKeyChecking=yes), authenticates the same way (the same
// identity file, or the same agent), reads no ssh_config (-F /dev/null) and never prompts.

import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { FarmError, throwIfAborted } from '../../src/errors.ts';
import type { Worker } from '../../src/inventory/schema.ts';
import type { ExecResult, RemoteProcess } from '../transport.ts';
import type { HostKey } from './hostkeys.ts';

/** How bulk streams travel: `auto` uses the OpenSSH client when `ssh` is installed. */
export type BulkTransfer = 'auto' | 'openssh' | 'ssh2';

// AES-GCM first: AES-NI makes it the cheapest cipher on both ends (chacha20 is OpenSSH's default).
const CIPHERS = 'aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr';
const STDERR_CAP = 64 * 1024;

export type BulkAuth = { identityFile: string } | { agent: string };

/** The `ssh` program on PATH, if any. */
export function findSshClient(path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'ssh');
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The known_hosts line that trusts exactly `key` under `alias`. */
export function knownHostsLine(alias: string, key: HostKey): string {
  return `${alias} ${key.keyType} ${key.blob.toString('base64')}\n`;
}

/** argv (after the program) for running `commandLine` on the worker. `commandLine` is already
 *  quoted for the remote shell; ssh passes it on as the exec request, as ssh2 does. */
export function sshArgv(
  worker: Pick<Worker, 'host' | 'port' | 'user' | 'name'>,
  knownHostsFile: string,
  auth: BulkAuth,
  commandLine: string,
  options: { connectTimeoutS?: number; keepaliveS?: number } = {},
): string[] {
  const { connectTimeoutS = 20, keepaliveS = 15 } = options;
  const o = (kv: string) => ['-o', kv];
  return [
    '-F', '/dev/null', // no user or system ssh_config: same host, port, user and key as the ssh2 connection
    '-T', '-x', '-a', // no tty, no X11 or agent forwarding
    '-p', String(worker.port),
    '-l', worker.user,
    ...o('BatchMode=yes'),
    ...o('StrictHostKeyChecking=yes'),
    ...o(`UserKnownHostsFile=${knownHostsFile}`),
    ...o('GlobalKnownHostsFile=/dev/null'),
    ...o(`HostKeyAlias=${hostAlias(worker.name)}`),
    ...o('CheckHostIP=no'),
    ...o('UpdateHostKeys=no'),
    ...o(`Ciphers=${CIPHERS}`),
    ...o(`ConnectTimeout=${Math.ceil(connectTimeoutS)}`),
    ...o(`ServerAliveInterval=${Math.ceil(keepaliveS)}`),
    ...o('ServerAliveCountMax=4'),
    ...o('ControlMaster=no'),
    ...o('ControlPath=none'),
    ...o('ClearAllForwardings=yes'),
    ...o('PermitLocalCommand=no'),
    ...o('LogLevel=ERROR'),
    ...('identityFile' in auth
      ? [...o('IdentitiesOnly=yes'), ...o('IdentityAgent=none'), '-i', auth.identityFile]
      : [...o(`IdentityAgent=${auth.agent}`)]),
    '--',
    worker.host,
    commandLine,
  ];
}

function hostAlias(workerName: string): string {
  return `farm-worker-${workerName.replace(/[^A-Za-z0-9._-]/g, '_')}`;
}

/** Starts bulk streams on one worker through the OpenSSH client. */
export class OpenSshBulk {
  private constructor(
    private readonly program: string,
    private readonly worker: Worker,
    private readonly dir: string,
    private readonly auth: BulkAuth,
    private readonly options: { connectTimeoutS?: number; keepaliveS?: number },
  ) {}

  /** Writes the private known_hosts (mode 0600, in a fresh 0700 directory) for the verified key. */
  static async prepare(
    program: string,
    worker: Worker,
    hostKey: HostKey,
    auth: BulkAuth,
    options: { connectTimeoutS?: number; keepaliveS?: number } = {},
  ): Promise<OpenSshBulk> {
    const dir = await mkdtemp(join(tmpdir(), 'farm-ssh-'));
    await writeFile(join(dir, 'known_hosts'), knownHostsLine(hostAlias(worker.name), hostKey), { mode: 0o600 });
    return new OpenSshBulk(program, worker, dir, auth, options);
  }

  /** Runs `commandLine`; the child is killed when `signal` fires or kill() is called. With
   *  `stdoutFd`, ssh writes the output into that file itself: no pipe, nothing passes Node. */
  spawn(commandLine: string, signal?: AbortSignal, stdoutFd?: number): RemoteProcess {
    throwIfAborted(signal);
    const argv = sshArgv(this.worker, join(this.dir, 'known_hosts'), this.auth, commandLine, this.options);
    const child = spawnChild(this.program, argv, { stdio: ['pipe', stdoutFd ?? 'pipe', 'pipe'] });
    return childProcess(child, this.worker, commandLine, signal);
  }

  async dispose(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

function childProcess(child: ChildProcess, worker: Worker, commandLine: string, signal: AbortSignal | undefined): RemoteProcess {
  let stderr = '';
  let killed = false;
  child.stderr!.on('data', (chunk: Buffer) => {
    if (stderr.length < STDERR_CAP) stderr += chunk.toString('utf8').slice(0, STDERR_CAP - stderr.length);
  });
  // A failed spawn surfaces through `done`; stdin errors (EPIPE after the remote side closed) do too.
  const stdin = child.stdin!;
  stdin.on('error', () => {});
  const kill = () => {
    if (killed) return;
    killed = true;
    child.kill('SIGTERM');
  };
  const onAbort = () => kill();
  signal?.addEventListener('abort', onAbort, { once: true });
  const shownLine = commandLine.length > 300 ? `${commandLine.slice(0, 300)}...` : commandLine;
  const done = new Promise<ExecResult>((resolve, reject) => {
    child.once('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(new FarmError('SSH', `cannot run ssh for \`${shownLine}\` on ${worker.name}: ${err.message}`, { cause: err }));
    });
    // 'close' comes after stdout and stderr ended, so the output is complete.
    child.once('close', (code, sig) => {
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) return reject(new FarmError('ABORTED', `cancelled: \`${shownLine}\` on ${worker.name}`));
      if (code === 255 && !killed) {
        // ssh's own failures (connect, host key, auth) exit 255; a remote 255 is rare and says so too.
        return reject(
          new FarmError('SSH', `ssh to ${worker.name} (${worker.host}:${worker.port}) failed for \`${shownLine}\`: ${stderr.trim().slice(-1000) || 'exit code 255'}`, {
            hint: 'check that the OpenSSH client reaches the worker as the farm does, or set settings.bulk_transfer: ssh2 in the inventory',
          }),
        );
      }
      resolve({ code: code ?? 128 + 15, signal: sig ?? undefined, stdout: '', stderr });
    });
  });
  done.catch(() => {}); // callers that only kill() must not see an unhandled rejection
  const stdout = child.stdout ?? new PassThrough().end();
  return { stdout, stdin, done, kill };
}
